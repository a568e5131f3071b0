"""The bottom layer: the data model, the one error hierarchy, the portable filter, the
``IndexSpec`` and, per database, the native schema and the document <-> row translation.

Depends on numpy alone: no torch, no database client (a database's schema module imports its
client's types lazily, when a native object is built).
"""

from m3vdb.schemas.data import Document, Hit, M3Embedding, WindowEmbedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import FieldNames, IndexSpec, MetadataField, MetadataType

__all__ = [
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
