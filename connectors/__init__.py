"""Connectors that store BGE-M3's three outputs in the native fields of Milvus, Qdrant and
Elasticsearch and query them through each database's own API.

``connect`` returns a :class:`Collection` (the front, written once) over the database's
:class:`~m3vdb.connectors.engine.Engine` (the few native primitives); ``drop`` and
``list_collections`` are the database-level verbs. ``import connectors`` imports no database
client: each engine imports its client when first used and, if it is missing, says which
``pip install 'm3vdb[...]'`` to run.
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
    SupportsScan,
    UpsertItem,
)
from m3vdb.connectors.collection import Collection, check_encoder
from m3vdb.connectors.engine import CollectionInfo, Engine
from m3vdb.errors import InputError
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.options import (
    BackendOptions,
    ElasticsearchOptions,
    MilvusOptions,
    QdrantEdgeOptions,
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
) -> Collection:
    """Opens (creating it if needed) a collection in the database ``target`` names.

    The collection is a context manager: ``with connect(...) as store:`` closes the client it
    created from a URL on exit (a client passed in stays open).

    Args:
        target: a native client (``pymilvus.MilvusClient``, ``qdrant_client.QdrantClient``,
            ``elasticsearch.Elasticsearch``) or a URL; see ``m3vdb.connectors.registry.URL_FORMS``.
        collection: the collection (index) name.
        encoder: encodes texts on upsert and search (an ``M3Encoder`` or any object with its
            ``encode`` contract, see ``m3vdb.schemas.Encoder``); without one, only
            precomputed embeddings can be written and searched.
        spec: what to store; defaults to all three outputs at the encoder's dimensions. An
            existing collection is validated against it (dimensions, metric, fields); without
            one, an existing collection opens as it recorded it was built (any model), and
            one made before m3vdb recorded its spec is validated against the default.
        options: the backend's own settings: ``MilvusOptions``, ``QdrantOptions``,
            ``QdrantEdgeOptions`` or ``ElasticsearchOptions`` (``m3vdb.schemas.options``),
            matching the target.
        create: create the collection when it is missing (the default). With False, a
            missing collection raises CollectionNotFoundError and nothing is created (no
            collection, and no Milvus Lite file or Qdrant local folder): use it to read.

    Raises:
        InputError: the target is not understood.
        TypeError: ``options`` are for another database than the target's.
        MissingDependencyError: the database's client is not installed.
        CollectionNotFoundError: ``create=False`` and the collection does not exist.
        SchemaMismatchError: the existing collection does not match ``spec``, or the
            encoder's dimensions differ from the collection's (the message gives both).
    """
    _check_name(collection)
    registry.check_options(target, options)
    engine_class = registry.load(target)
    if spec is not None and encoder is not None:
        check_encoder(encoder, spec)  # before anything is created
    default = IndexSpec.for_encoder(encoder) if encoder is not None else IndexSpec()
    engine = engine_class.open(
        target,
        collection=collection,
        spec=spec,
        default_spec=default,
        options=options,
        create=create,
    )
    collection_type: type[Collection] = engine_class.collection_type or Collection
    return collection_type(engine, encoder=encoder)


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
    _check_name(collection)
    registry.check_options(target, options)
    return registry.load(target).drop_collection(target, collection, options=options)


def list_collections(target: Any, *, options: BackendOptions | None = None) -> list[CollectionInfo]:
    """Every collection of the database ``target`` names, sorted by name, each with its entry
    count and the spec (model, dimensions, outputs, options) it recorded when m3vdb built it
    (None for a collection m3vdb did not build or built before it recorded specs). Opens no
    collection and creates nothing (no Lite file, no local folder); m3vdb's own helper
    collections (Milvus's companion collections of ColBERT rows) are left out.

    Raises:
        InputError: the target is not understood.
        TypeError: ``options`` are for another database than the target's.
        MissingDependencyError: the database's client is not installed.
        BackendError: the database failed.
    """
    registry.check_options(target, options)
    return registry.load(target).list_collections(target, options=options)


def _check_name(collection: object) -> None:
    if not isinstance(collection, str) or not collection:
        raise InputError(f"collection must be a non-empty string, got {collection!r}")


__all__ = [
    "BackendOptions",
    "Collection",
    "CollectionInfo",
    "Connector",
    "Engine",
    "SupportsScan",
    "ElasticsearchOptions",
    "Encoder",
    "MilvusOptions",
    "QdrantEdgeOptions",
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
    "list_collections",
]
