"""``M3DocumentStore``: a Haystack 2.x ``DocumentStore`` over any m3vdb connector target."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from m3vdb._frameworks import complete_embeddings, scan, shared_encoder, shared_remote_encoder
from m3vdb.connectors import connect
from m3vdb.connectors.base import Connector, HybridOptions, SearchMode
from m3vdb.errors import InputError
from m3vdb.haystack import filters as hf
from m3vdb.haystack._haystack import (
    DuplicateDocumentError,
    DuplicatePolicy,
    FilterError,
    HDocument,
    default_from_dict,
    default_to_dict,
    document_matches_filter,
)
from m3vdb.haystack.convert import from_m3, to_m3
from m3vdb.schemas.data import M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import IndexSpec


class M3DocumentStore:
    """A Haystack document store keeping BGE-M3's dense, sparse and ColBERT vectors in the
    native fields of Milvus, Qdrant or Elasticsearch.

    ``write_documents`` stores each document's text, ``meta``, ``embedding`` (dense) and
    ``sparse_embedding`` as given, and encodes with the model what a document does not carry
    (ColBERT always: Haystack documents have no field for it). Fusion and ColBERT reranking
    run in the database (see :class:`~m3vdb.haystack.M3HybridRetriever`).

    Example::

        store = M3DocumentStore(target="m3vdb.db", collection="docs", model="BAAI/bge-m3")
        store.write_documents([Document(content="BGE-M3 is multilingual")])

    Args:
        target: a connector target: a URL (``m3vdb.db`` for Milvus Lite, ``qdrant+memory://``,
            ``qdrant+local:PATH``, ``milvus://HOST:19530``, ``elasticsearch://HOST:9200``...);
            a native client works too but makes the store impossible to serialise.
        collection: the collection (index) name.
        model: BGE-M3 checkpoint (hub id or directory), loaded once per process and shared
            with components naming the same model; None: documents must carry every output
            the collection stores.
        device: the encoder's device (default: CUDA when available).
        sparse: store the sparse vector.
        colbert: store the ColBERT vectors (used to rerank hybrid results).
        embedding_dim: dense dimension of a collection without model (dense only then).
        encoder: an encoder to use instead of loading ``model`` (an ``M3Encoder``, whose
            checkpoint ``to_dict`` records as ``model``, or any ``m3vdb.Encoder``).
        encoder_url: an ``m3vdb serve`` to encode with instead of loading ``model`` here (one
            model shared by many processes); recorded by ``to_dict``.

    Raises:
        InputError: neither ``model``, ``encoder``, ``encoder_url`` nor ``embedding_dim`` says
            the dimension.
    """

    def __init__(
        self,
        target: Any = "m3vdb.db",
        *,
        collection: str = "haystack",
        model: str | None = "BAAI/bge-m3",
        device: str | None = None,
        sparse: bool = True,
        colbert: bool = True,
        embedding_dim: int | None = None,
        encoder: Encoder | None = None,
        encoder_url: str | None = None,
    ) -> None:
        self.target = target
        self.collection = collection
        # An encoder passed in is serialised as the checkpoint it was loaded from.
        self.model = str(getattr(encoder, "model_path", model)) if encoder is not None else model
        self.device = device
        self.sparse = sparse
        self.colbert = colbert
        self.embedding_dim = embedding_dim
        self.encoder_url = encoder_url
        self._encoder = encoder
        if encoder is None and encoder_url is not None:
            self._encoder = shared_remote_encoder(encoder_url)
        elif encoder is None and model is not None:
            self._encoder = shared_encoder(model, device)
        if self._encoder is not None:
            spec = IndexSpec.for_encoder(self._encoder, sparse=sparse, colbert=colbert)
        elif embedding_dim is not None:
            # another model's vectors: cosine, as every m3vdb store decides it
            spec = dataclasses.replace(IndexSpec.for_dense_embeddings(embedding_dim), sparse=sparse)
        else:
            raise InputError(
                "M3DocumentStore needs a model (or encoder) to know what to store, or "
                "embedding_dim for a collection of precomputed vectors; got neither"
            )
        self._connector: Connector = connect(
            target, collection=collection, encoder=self._encoder, spec=spec
        )

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The store's init parameters (``target`` must be a URL or path, not a client).

        Raises:
            TypeError: the store was built from a native client object.
        """
        if not isinstance(self.target, str):
            raise TypeError(
                f"M3DocumentStore.to_dict needs target as a URL or path; this store was built "
                f"from a {type(self.target).__name__} object: build it from a URL to serialise"
            )
        return default_to_dict(
            self,
            target=self.target,
            collection=self.collection,
            model=self.model,
            device=self.device,
            sparse=self.sparse,
            colbert=self.colbert,
            embedding_dim=self.embedding_dim,
            encoder_url=self.encoder_url,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> M3DocumentStore:
        """The store ``to_dict`` described (the model is shared if already loaded)."""
        store: M3DocumentStore = default_from_dict(cls, data)
        return store

    # -- properties ---------------------------------------------------------------------

    @property
    def connector(self) -> Connector:
        """The m3vdb connector (native features: ``drop``, ``client``...)."""
        return self._connector

    @property
    def encoder(self) -> Encoder | None:
        """The encoder documents and text queries are encoded with."""
        return self._encoder

    def close(self) -> None:
        """Closes the connector (and the client it created from the target URL)."""
        self._connector.close()

    # -- the DocumentStore protocol -----------------------------------------------------

    def count_documents(self) -> int:
        """Number of documents stored."""
        return self._connector.count()

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[HDocument]:
        """The documents matching a Haystack filter (all of them with none), in no defined
        order, without embeddings (vectors stay in the database's index).

        Every Haystack operator is accepted: the part m3vdb's portable filter can express
        runs in the database, and Haystack's own ``document_matches_filter`` decides on what
        comes back, so the result is exactly Haystack's semantics.

        Raises:
            FilterError: the filter is malformed.
        """
        return list(self._filtered(filters))

    def _filtered(self, filters: dict[str, Any] | None) -> Iterator[HDocument]:
        if filters:
            hf.validate(filters)
        for doc in scan(self._connector, hf.pushdown(filters)):
            out = from_m3(doc)
            if not filters or document_matches_filter(filters, out):
                yield out

    def write_documents(
        self, documents: list[HDocument], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """Writes documents; ``DuplicatePolicy.NONE`` means ``FAIL``.

        Returns:
            The number of documents written (skipped duplicates not counted).

        Raises:
            ValueError: ``documents`` is not a list of Haystack documents, or a document has
                no text content.
            DuplicateDocumentError: ``policy`` is FAIL (or NONE) and an id exists already
                (then nothing of the call is written).
            InputError: an embedding has the wrong dimension, or there is no model to encode
                what a document lacks.
        """
        if not isinstance(documents, list) or any(not isinstance(d, HDocument) for d in documents):
            raise ValueError(
                f"write_documents takes a list of haystack.Document, got {type(documents).__name__}"
                + ("" if not isinstance(documents, list) else " with other items")
            )
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.FAIL
        # The last copy of an id within the call wins (as sequential writes would).
        unique = list({d.id: d for d in documents}.values())
        if policy != DuplicatePolicy.OVERWRITE:
            existing = {d.id for d in self._connector.get([d.id for d in unique])}
            if existing and policy == DuplicatePolicy.FAIL:
                raise DuplicateDocumentError(
                    f"ids already in collection {self.collection!r}: {sorted(existing)[:10]}; "
                    "write with policy=DuplicatePolicy.OVERWRITE or SKIP"
                )
            unique = [d for d in unique if d.id not in existing]
        if not unique:
            return 0
        pairs = [to_m3(d) for d in unique]
        spec = self._connector.spec
        embs = complete_embeddings(
            [doc.text for doc, _ in pairs],
            [_only_stored(emb, spec) for _, emb in pairs],
            spec,
            self._encoder,
            ids=[doc.id for doc, _ in pairs],
        )
        return self._connector.upsert(zip([doc for doc, _ in pairs], embs))

    def delete_documents(self, document_ids: list[str]) -> None:
        """Deletes these ids; unknown ids are ignored."""
        self._connector.delete(list(document_ids))

    # -- beyond the protocol: what Haystack's extended suites test -----------------------

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """Number of documents matching a Haystack filter (every operator accepted).

        Raises:
            FilterError: the filter is malformed.
        """
        return sum(1 for _ in self._filtered(filters))

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Deletes the documents matching a Haystack filter; returns how many.

        Raises:
            FilterError: the filter is malformed.
        """
        ids = [d.id for d in self._filtered(filters)]
        for start in range(0, len(ids), 1000):
            self._connector.delete(ids[start : start + 1000])
        return len(ids)

    def delete_all_documents(self, recreate_index: bool = False) -> None:
        """Deletes every document.

        Args:
            recreate_index: drop the collection and create it again (fast for large
                collections; anything created outside m3vdb on it is lost); default: delete
                the documents and keep the collection.
        """
        if recreate_index:
            spec = self._connector.spec
            self._connector.drop()
            self._connector.close()
            self._connector = connect(
                self.target, collection=self.collection, encoder=self._encoder, spec=spec
            )
            return
        ids = [d.id for d in scan(self._connector)]
        for start in range(0, len(ids), 1000):
            self._connector.delete(ids[start : start + 1000])

    # -- searches used by the retrievers ------------------------------------------------

    def search(
        self,
        query: str | M3Embedding,
        *,
        mode: SearchMode,
        top_k: int,
        filters: dict[str, Any] | None = None,
        hybrid: HybridOptions | None = None,
    ) -> list[HDocument]:
        """Top-``top_k`` documents in one database request, with the database's score.

        Raises:
            FilterError: the filter is malformed, or has a clause the database cannot run
                inside a search (``!=``, ``not in``, ``NOT``, ``None``, dates, non-``meta``
                fields).
        """
        if filters:
            hf.validate(filters)
            refused = hf.unpushable(filters)
            if refused:
                raise FilterError(
                    f"these filter clauses cannot run inside the database search: {refused}; "
                    "m3vdb pushes down ==, in, >, >=, <, <= on meta fields combined with AND / "
                    "OR. Rewrite the filter, or use filter_documents (which accepts every "
                    "operator) to select documents"
                )
        hits = self._connector.search(
            query, top_k, mode=mode, filter=hf.pushdown(filters), hybrid=hybrid
        )
        docs = [from_m3(h) for h in hits]
        # The pushdown matches a stored list holding the value; Haystack's == does not.
        return [d for d in docs if not filters or document_matches_filter(filters, d)]


def _only_stored(emb: M3Embedding, spec: IndexSpec) -> M3Embedding:
    """Drops what the collection does not store (a sparse embedding in a dense-only one)."""
    return M3Embedding(
        dense=emb.dense if spec.dense else None,
        sparse=emb.sparse if spec.sparse else None,
    )
