"""m3vdb: BGE-M3's dense, sparse and ColBERT outputs in the native fields and hybrid queries
of Milvus, Qdrant and Elasticsearch.

The front door::

    from m3vdb import connect, M3Encoder, Document, HybridOptions
    store = connect("docs.db", collection="docs", encoder=M3Encoder("BAAI/bge-m3"))

``import m3vdb`` loads neither torch nor any database client: ``M3Encoder`` is imported on
first use, and each connector imports its client when a target needs it.

Layers, bottom up: ``m3vdb.schemas`` (numpy only) <- ``m3vdb.encoder`` (torch) and
``m3vdb.connectors`` (database clients, lazily) <- this package's CLI and framework stores.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# Every public name -> the module that defines it. Resolved on first access (PEP 562), so
# ``import m3vdb.schemas`` loads only the schemas layer and ``m3vdb.M3Encoder`` alone pulls
# in torch.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["Collection", "CollectionInfo", "connect", "drop", "list_collections"], "m3vdb.connectors"
    ),
    **dict.fromkeys(
        ["Connector", "FilterLike", "Fusion", "HybridOptions", "SearchMode", "UpsertItem"],
        "m3vdb.connectors.base",
    ),
    **dict.fromkeys(["Document", "Hit", "M3Embedding", "WindowEmbedding"], "m3vdb.schemas.data"),
    **dict.fromkeys(["Encoder"], "m3vdb.schemas.encoding"),
    **dict.fromkeys(
        [
            "BackendError",
            "BulkWriteError",
            "CheckpointError",
            "CollectionNotFoundError",
            "InputError",
            "M3VDBError",
            "MissingDependencyError",
            "SchemaMismatchError",
            "UnsupportedCapabilityError",
        ],
        "m3vdb.errors",
    ),
    **dict.fromkeys(
        ["Filter", "and_", "eq", "in_", "matches", "or_", "parse_filter", "range_"],
        "m3vdb.schemas.filters",
    ),
    **dict.fromkeys(
        ["ColbertFde", "FieldNames", "IndexSpec", "MetadataField"], "m3vdb.schemas.spec"
    ),
    **dict.fromkeys(["Chunking", "IndexReport", "index"], "m3vdb.indexing"),
    **dict.fromkeys(["M3Encoder"], "m3vdb.encoder"),
    **dict.fromkeys(
        ["TransferReport", "copy", "encode", "export", "load"], "m3vdb.formats.transfer"
    ),
    **dict.fromkeys(["RemoteEncoder"], "m3vdb.remote"),
}

if TYPE_CHECKING:
    from m3vdb.connectors import Collection, CollectionInfo, connect, drop, list_collections
    from m3vdb.connectors.base import (
        Connector,
        FilterLike,
        Fusion,
        HybridOptions,
        SearchMode,
        UpsertItem,
    )
    from m3vdb.encoder import M3Encoder
    from m3vdb.errors import (
        BackendError,
        BulkWriteError,
        CheckpointError,
        CollectionNotFoundError,
        InputError,
        M3VDBError,
        MissingDependencyError,
        SchemaMismatchError,
        UnsupportedCapabilityError,
    )
    from m3vdb.formats.transfer import TransferReport, copy, encode, export, load
    from m3vdb.indexing import Chunking, IndexReport, index
    from m3vdb.remote import RemoteEncoder
    from m3vdb.schemas.data import Document, Hit, M3Embedding, WindowEmbedding
    from m3vdb.schemas.encoding import Encoder
    from m3vdb.schemas.filters import (
        Filter,
        and_,
        eq,
        in_,
        matches,
        or_,
        parse_filter,
        range_,
    )
    from m3vdb.schemas.spec import ColbertFde, FieldNames, IndexSpec, MetadataField


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'm3vdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "BackendError",
    "BulkWriteError",
    "CheckpointError",
    "Chunking",
    "Collection",
    "CollectionInfo",
    "ColbertFde",
    "CollectionNotFoundError",
    "Connector",
    "Document",
    "Encoder",
    "FieldNames",
    "Filter",
    "FilterLike",
    "Fusion",
    "Hit",
    "HybridOptions",
    "IndexReport",
    "IndexSpec",
    "InputError",
    "M3Embedding",
    "M3Encoder",
    "M3VDBError",
    "MetadataField",
    "MissingDependencyError",
    "RemoteEncoder",
    "SchemaMismatchError",
    "SearchMode",
    "TransferReport",
    "UnsupportedCapabilityError",
    "UpsertItem",
    "WindowEmbedding",
    "__version__",
    "and_",
    "connect",
    "copy",
    "drop",
    "encode",
    "eq",
    "export",
    "in_",
    "index",
    "list_collections",
    "load",
    "matches",
    "or_",
    "parse_filter",
    "range_",
]
