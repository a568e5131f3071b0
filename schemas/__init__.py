"""Index descriptions and their translation into each database's native schema.

``schemas.spec`` holds the portable :class:`IndexSpec`; one module per database holds pure
functions from it (and from documents/embeddings) to native schemas and rows, with their
inverses. No database client is needed to import this package.
"""

from schemas.spec import FieldNames, IndexSpec, MetadataField, MetadataType

__all__ = ["FieldNames", "IndexSpec", "MetadataField", "MetadataType"]
