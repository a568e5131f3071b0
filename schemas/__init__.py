"""The bottom layer: the data model and its translations: the portable filter, the
``IndexSpec``, the wire codec, the scoring formulas and, per database, its settings, the
native schema and the document <-> row translation. (Errors are ``m3vdb.errors``, a leaf.)

Depends on numpy alone: no torch, no database client (a database's schema module imports its
client's types lazily, when a native object is built).
"""

from m3vdb.schemas.data import Document, Hit, M3Embedding, WindowEmbedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import ColbertFde, FieldNames, IndexSpec, MetadataField, MetadataType

__all__ = [
    "ColbertFde",
    "Document",
    "Encoder",
    "FieldNames",
    "Hit",
    "IndexSpec",
    "M3Embedding",
    "MetadataField",
    "MetadataType",
    "WindowEmbedding",
]
