"""Retrievers over :class:`~m3vdb.haystack.M3DocumentStore`: dense, sparse and hybrid, each
one database request (the hybrid one fuses, and reranks by ColBERT, in the database)."""

from __future__ import annotations

from typing import Any

import numpy as np

from m3vdb.connectors.base import HybridOptions, SearchMode
from m3vdb.haystack._haystack import (
    HDocument,
    SparseEmbedding,
    component,
    default_from_dict,
    default_to_dict,
)
from m3vdb.haystack.convert import sparse_from_haystack
from m3vdb.haystack.document_store import M3DocumentStore
from m3vdb.schemas.data import M3Embedding


class _Retriever:
    def __init__(
        self,
        document_store: M3DocumentStore,
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
    ) -> None:
        if not isinstance(document_store, M3DocumentStore):
            raise TypeError(
                f"document_store must be an M3DocumentStore, got {type(document_store).__name__}"
            )
        if top_k <= 0:
            raise ValueError(f"top_k must be positive, got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k

    def _init_parameters(self) -> dict[str, Any]:
        return {
            "document_store": self.document_store.to_dict(),
            "filters": self.filters,
            "top_k": self.top_k,
        }

    def to_dict(self) -> dict[str, Any]:
        """Init parameters, the document store serialised with its own ``to_dict``."""
        return default_to_dict(self, **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The retriever ``to_dict`` described."""
        params = dict(data.get("init_parameters", {}))
        params["document_store"] = M3DocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def _search(
        self,
        query: str | M3Embedding,
        mode: SearchMode,
        filters: dict[str, Any] | None,
        top_k: int | None,
        hybrid: HybridOptions | None = None,
    ) -> dict[str, list[HDocument]]:
        docs = self.document_store.search(
            query,
            mode=mode,
            top_k=top_k or self.top_k,
            filters=filters if filters is not None else self.filters,
            hybrid=hybrid,
        )
        return {"documents": docs}


@component
class M3EmbeddingRetriever(_Retriever):
    """Dense retrieval: the query's ``embedding`` against the stored dense vectors (dot
    product; cosine on BGE-M3's normalised vectors).

    Args:
        document_store: the store.
        filters: default Haystack filter (``==``, ``in``, ``>``, ``>=``, ``<``, ``<=`` on
            ``meta.*``, ``AND`` / ``OR``; others raise ``FilterError``).
        top_k: default number of documents.
    """

    @component.output_types(documents=list[HDocument])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[HDocument]]:
        """Top documents for a dense query vector, best first, ``score`` set."""
        query = M3Embedding(dense=np.asarray(query_embedding, dtype=np.float32))
        return self._search(query, "dense", filters, top_k)


@component
class M3SparseEmbeddingRetriever(_Retriever):
    """Sparse (lexical) retrieval: the query's ``sparse_embedding`` against the stored BGE-M3
    weights (score = sum over shared tokens of the products of the weights).

    Args: as :class:`M3EmbeddingRetriever`.
    """

    @component.output_types(documents=list[HDocument])
    def run(
        self,
        query_sparse_embedding: SparseEmbedding,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[HDocument]]:
        """Top documents for a sparse query vector, best first, ``score`` set."""
        query = M3Embedding(sparse=sparse_from_haystack(query_sparse_embedding))
        return self._search(query, "sparse", filters, top_k)


@component
class M3HybridRetriever(_Retriever):
    """Hybrid retrieval in ONE database request: dense and sparse candidates fused (RRF or
    weighted) and, when the collection stores ColBERT, reranked by ColBERT MaxSim.

    Give ``query`` (the text: the store's encoder computes dense, sparse and ColBERT in one
    pass, so the rerank runs) or ``query_embedding`` + ``query_sparse_embedding`` (from
    :class:`~m3vdb.haystack.M3TextEmbedder`: fusion only, no ColBERT query rows to rerank
    with). Scores: the fusion score, or the MaxSim sum when reranked.

    Args:
        document_store: the store.
        filters: default Haystack filter (see :class:`M3EmbeddingRetriever`).
        top_k: default number of documents.
        fusion: "rrf" or "weighted".
        rrf_k: the RRF constant.
        weights: (dense, sparse) weights of ``fusion="weighted"``.
        rerank: rerank by ColBERT when the collection stores it and the query text is given.
    """

    def __init__(
        self,
        document_store: M3DocumentStore,
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        fusion: str = "rrf",
        rrf_k: int = 60,
        weights: tuple[float, float] = (0.5, 0.5),
        rerank: bool = True,
    ) -> None:
        _Retriever.__init__(self, document_store, filters=filters, top_k=top_k)
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.weights = (float(weights[0]), float(weights[1]))
        self.rerank = rerank

    def _init_parameters(self) -> dict[str, Any]:
        return {
            **_Retriever._init_parameters(self),
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "weights": list(self.weights),
            "rerank": self.rerank,
        }

    @component.output_types(documents=list[HDocument])
    def run(
        self,
        query: str | None = None,
        query_embedding: list[float] | None = None,
        query_sparse_embedding: SparseEmbedding | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[HDocument]]:
        """Top documents, best first, ``score`` set.

        Raises:
            ValueError: neither ``query`` nor both embeddings are given.
        """
        options = HybridOptions(
            fusion="rrf" if self.fusion == "rrf" else "weighted",
            rrf_k=self.rrf_k,
            weights=self.weights,
            rerank=self.rerank,
        )
        if query_embedding is not None and query_sparse_embedding is not None:
            q: str | M3Embedding = M3Embedding(
                dense=np.asarray(query_embedding, dtype=np.float32),
                sparse=sparse_from_haystack(query_sparse_embedding),
            )
            # no ColBERT rows for this query: fusion only
            options = HybridOptions(
                fusion=options.fusion, rrf_k=self.rrf_k, weights=self.weights, rerank=False
            )
        elif query is not None:
            encoder = self.document_store.encoder
            if encoder is None:
                raise ValueError(
                    "M3HybridRetriever got a query text but the store has no model to encode "
                    "it; give query_embedding and query_sparse_embedding (M3TextEmbedder)"
                )
            spec = self.document_store.connector.spec
            q = encoder.encode([query], **spec.query_outputs("hybrid", rerank=options.rerank))[0]
        else:
            raise ValueError(
                "M3HybridRetriever needs query (text) or both query_embedding and "
                "query_sparse_embedding; got neither"
            )
        return self._search(q, "hybrid", filters, top_k, options)
