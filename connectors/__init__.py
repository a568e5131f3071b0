"""Connectors that store BGE-M3's three outputs in the native fields of Milvus, Qdrant and
Elasticsearch and query them through each database's own API.

``import connectors`` imports no database client: each connector module imports its client
when first used and, if it is missing, says which ``pip install 'm3vdb[...]'`` to run.
"""

from __future__ import annotations

from typing import Any

from m3vdb.connectors import registry
from m3vdb.connectors.base import (
    Connector,
    FilterLike,
    Fusion,
    HybridOptions,
    SearchMode,
    UpsertItem,
)
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.errors import InputError
from m3vdb.schemas.options import (
    BackendOptions,
    ElasticsearchOptions,
    MilvusOptions,
    QdrantOptions,
)
from m3vdb.schemas.spec import IndexSpec


def connect(
    target: Any,
    *,
    collection: str,
    encoder: Encoder | None = None,
    spec: IndexSpec | None = None,
    options: BackendOptions | None = None,
    create: bool = True,
) -> Connector:
    """Opens (creating it if needed) a collection in the database ``target`` names.

    The connector is a context manager: ``with connect(...) as store:`` closes the client it
    created from a URL on exit (a client passed in stays open).

    Args:
        target: a native client (``pymilvus.MilvusClient``, ``qdrant_client.QdrantClient``,
            ``elasticsearch.Elasticsearch``) or a URL; see ``m3vdb.connectors.registry.URL_FORMS``.
        collection: the collection (index) name.
        encoder: encodes texts on upsert and search (an ``M3Encoder`` or any object with its
            ``encode`` contract, see ``m3vdb.schemas.Encoder``); without one, only
            precomputed embeddings can be written and searched.
        spec: what to store; defaults to all three outputs at the encoder's dimensions. An
            existing collection is validated against it (dimensions, metric, fields).
        options: the backend's own settings: ``MilvusOptions``, ``QdrantOptions`` or
            ``ElasticsearchOptions`` (``m3vdb.schemas.options``), matching the target.
        create: create the collection when it is missing (the default). With False, a
            missing collection raises CollectionNotFoundError and nothing is created (no
            collection, and no Milvus Lite file or Qdrant local folder): use it to read.

    Raises:
        InputError: the target is not understood.
        TypeError: ``options`` are for another database than the target's.
        MissingDependencyError: the database's client is not installed.
        CollectionNotFoundError: ``create=False`` and the collection does not exist.
        SchemaMismatchError: the existing collection does not match ``spec``.
    """
    registry.check_options(target, options)
    module = registry.load(target)
    connector: Connector = module.open_connector(
        target, collection=collection, encoder=encoder, spec=spec, options=options, create=create
    )
    return connector


def drop(target: Any, *, collection: str, options: BackendOptions | None = None) -> bool:
    """Deletes ``collection`` (and what m3vdb created with it: Milvus's companion collection
    of ColBERT rows) WITHOUT opening it as a connector, so it works on a collection that does
    not match any IndexSpec you have (built with another model). Nothing else is touched: a
    collection merely named like a companion stays.

    Returns:
        True when the collection existed and was deleted; False when there was none.

    Raises:
        InputError: the target is not understood.
        TypeError: ``options`` are for another database than the target's.
        MissingDependencyError: the database's client is not installed.
        BackendError: the database failed.
    """
    if not isinstance(collection, str) or not collection:
        raise InputError(f"collection must be a non-empty string, got {collection!r}")
    registry.check_options(target, options)
    dropped: bool = registry.load(target).drop_collection(target, collection, options=options)
    return dropped


__all__ = [
    "BackendOptions",
    "Connector",
    "ElasticsearchOptions",
    "Encoder",
    "MilvusOptions",
    "QdrantOptions",
    "Document",
    "FilterLike",
    "Fusion",
    "Hit",
    "HybridOptions",
    "IndexSpec",
    "M3Embedding",
    "SearchMode",
    "UpsertItem",
    "connect",
    "drop",
]
