"""``M3VectorStore``: a LlamaIndex ``BasePydanticVectorStore`` over any m3vdb connector.

Two ways to embed, as ``m3vdb.langchain.M3VectorStore``:

- with an ``M3Encoder`` (``encoder=``): the collection stores dense, sparse and ColBERT; the
  store encodes what nodes do not carry (nodes embedded by :class:`M3EmbedModel` on the same
  encoder carry everything already: one forward pass) and encodes ``query_str`` itself, so
  ``DEFAULT`` (dense), ``SPARSE`` and ``HYBRID`` (fusion in the database, then ColBERT
  rerank) all run from one query pass.
- without one (``embed_dim=``): a dense-only collection (cosine) for nodes and queries
  embedded by any other ``Settings.embed_model``; ``DEFAULT`` mode only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import numpy as np

from m3vdb._frameworks import complete_embeddings, scan
from m3vdb.connectors import connect
from m3vdb.connectors.base import Connector, HybridOptions, SearchMode
from m3vdb.errors import InputError
from m3vdb.llama_index import embeddings as m3_embeddings
from m3vdb.llama_index._llama_index import (
    BaseNode,
    BasePydanticVectorStore,
    MetadataFilters,
    MetadataMode,
    PrivateAttr,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
    metadata_dict_to_node,
    node_to_metadata_dict,
)
from m3vdb.llama_index.filters import to_portable
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.filters import And, Filter, In
from m3vdb.schemas.spec import IndexSpec

T = TypeVar("T")

#: Metadata key holding the node id, so that ``node_ids`` can filter inside the database.
NODE_ID_KEY = "_node_id"
#: Metadata key LlamaIndex's ``node_to_metadata_dict`` writes the source document's id to.
REF_DOC_KEY = "ref_doc_id"

_MODES: dict[VectorStoreQueryMode, SearchMode] = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.SPARSE: "sparse",
    VectorStoreQueryMode.HYBRID: "hybrid",
}


def _threaded(
    method: Callable[..., T],
) -> Callable[..., Coroutine[Any, Any, T]]:
    """The async twin of a sync method: the same call in a worker thread (the database
    clients are blocking), so one implementation serves both."""

    async def twin(self: Any, *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    twin.__name__ = f"a{method.__name__}"
    twin.__doc__ = f"Async :meth:`{method.__name__}` (run in a worker thread)."
    return twin


class M3VectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over one m3vdb collection (Milvus, Qdrant, Elasticsearch).

    Example::

        enc = M3Encoder("BAAI/bge-m3")
        Settings.embed_model = M3EmbedModel(encoder=enc)
        store = M3VectorStore.connect("m3vdb.db", collection="docs", encoder=enc)
        index = VectorStoreIndex.from_documents(
            docs, storage_context=StorageContext.from_defaults(vector_store=store)
        )
        index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=5)

    Args:
        connector: the collection (``m3vdb.connect(...)``); closed by :meth:`close` only when
            ``owns_connector``.
        encoder: BGE-M3 encoder for what nodes lack and for ``query_str``; None for a
            dense-only collection of precomputed embeddings.
        hybrid: default fusion / rerank of ``HYBRID`` queries (a query's ``alpha`` switches
            to weighted fusion with weights ``(alpha, 1 - alpha)``).
        batch_size: nodes written per request.
        owns_connector: close the connector in :meth:`close`.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    _connector: Connector = PrivateAttr()
    _encoder: Encoder | None = PrivateAttr()
    _hybrid: HybridOptions = PrivateAttr()
    _batch_size: int = PrivateAttr()
    _owns: bool = PrivateAttr()

    def __init__(
        self,
        connector: Connector,
        *,
        encoder: Encoder | None = None,
        hybrid: HybridOptions | None = None,
        batch_size: int = 64,
        owns_connector: bool = False,
    ) -> None:
        # With an encoder the store embeds query_str itself (all outputs in one pass); the
        # retriever then skips its own embed_model call.
        super().__init__(stores_text=True, is_embedding_query=encoder is None)
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        spec = connector.spec
        if encoder is None and (spec.sparse or spec.colbert):
            raise InputError(
                f"collection {connector.collection!r} stores sparse={spec.sparse}, "
                f"colbert={spec.colbert}, which only BGE-M3 can compute: pass encoder=M3Encoder"
                "(...), or open a dense-only collection (M3VectorStore.connect(..., embed_dim=N))"
            )
        self._connector = connector
        self._encoder = encoder
        self._hybrid = hybrid or HybridOptions()
        self._batch_size = batch_size
        self._owns = owns_connector

    @classmethod
    def connect(
        cls,
        target: Any,
        *,
        collection: str,
        encoder: Encoder | None = None,
        embed_dim: int | None = None,
        spec: IndexSpec | None = None,
        hybrid: HybridOptions | None = None,
    ) -> M3VectorStore:
        """Opens (creating it if needed) ``collection`` at ``target``.

        Args:
            target: what ``m3vdb.connect`` takes: ``m3vdb.db`` (Milvus Lite),
                ``qdrant+memory://``, ``qdrant+local:PATH``, ``milvus://HOST:19530``,
                ``elasticsearch://HOST:9200``, a native client...
            collection: the collection name.
            encoder: BGE-M3 encoder: all three outputs stored (default spec).
            embed_dim: without encoder: the dimension of the dense-only collection (cosine).
            spec: what to store, overriding the defaults above.
            hybrid: default hybrid options.

        Raises:
            InputError: neither ``encoder`` nor ``embed_dim`` (nor ``spec``) is given.
        """
        if spec is None:
            if encoder is not None:
                spec = IndexSpec.for_encoder(encoder)
            elif embed_dim is not None:
                spec = IndexSpec.for_dense_embeddings(embed_dim)
            else:
                raise InputError(
                    "M3VectorStore.connect needs encoder= (BGE-M3: dense, sparse, ColBERT) or "
                    "embed_dim= (a dense-only collection for another embedding model)"
                )
        connector = connect(target, collection=collection, encoder=encoder, spec=spec)
        return cls(connector, encoder=encoder, hybrid=hybrid, owns_connector=True)

    @classmethod
    def class_name(cls) -> str:
        return "M3VectorStore"

    @property
    def client(self) -> Any:
        """The m3vdb connector (``.client`` on it is the native database client)."""
        return self._connector

    @property
    def connector(self) -> Connector:
        """The m3vdb connector."""
        return self._connector

    @property
    def encoder(self) -> Encoder | None:
        """The encoder nodes and queries are encoded with."""
        return self._encoder

    def close(self) -> None:
        """Closes the connector when this store opened it."""
        if self._owns:
            self._connector.close()

    # -- writes ----------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Writes nodes (upsert by node id): text, metadata, ``ref_doc_id`` and the vectors.

        A node's ``embedding`` is stored as the dense vector; what else the collection stores
        is encoded from ``node.get_content(MetadataMode.EMBED)`` (the text LlamaIndex embeds),
        unless :class:`M3EmbedModel` on the same encoder computed it already.

        Returns:
            The node ids, in order.

        Raises:
            InputError: a node's embedding has the wrong dimension, or a node lacks one and
                there is no encoder.
        """
        _reject_unknown("add", add_kwargs)
        nodes = list(nodes)
        spec = self._connector.spec
        for start in range(0, len(nodes), self._batch_size):
            batch = nodes[start : start + self._batch_size]
            texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in batch]
            given = [self._carried(n, t, spec) for n, t in zip(batch, texts)]
            embs = complete_embeddings(
                texts, given, spec, self._encoder, ids=[n.node_id for n in batch]
            )
            docs = [self._document(n) for n in batch]
            self._connector.upsert(list(zip(docs, embs)), batch_size=len(batch))
        return [n.node_id for n in nodes]

    def _carried(self, node: BaseNode, text: str, spec: IndexSpec) -> M3Embedding:
        dense = None
        if spec.dense and node.embedding is not None:
            dense = np.asarray(node.embedding, dtype=np.float32)
        side = m3_embeddings.recall(self._encoder, text) if self._encoder is not None else None
        return M3Embedding(
            dense=dense,
            sparse=side.sparse if side is not None and spec.sparse else None,
            colbert=side.colbert if side is not None and spec.colbert else None,
        )

    def _document(self, node: BaseNode) -> Document:
        metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
        metadata[NODE_ID_KEY] = node.node_id
        return Document(node.node_id, node.get_content(metadata_mode=MetadataMode.NONE), metadata)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the source document ``ref_doc_id``."""
        _reject_unknown("delete", delete_kwargs)
        self._delete_matching(In(REF_DOC_KEY, (ref_doc_id,)))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Deletes the nodes with these ids and/or matching ``filters`` (both: the nodes
        meeting both); neither: nothing (use :meth:`clear` to delete everything)."""
        _reject_unknown("delete_nodes", delete_kwargs)
        if (node_ids is None and filters is None) or node_ids == []:
            return
        flt = to_portable(filters)
        if flt is None and node_ids is not None:
            self._connector.delete(list(node_ids))
            return
        self._delete_matching(_with_ids(flt, node_ids))

    def _delete_matching(self, flt: Filter | None) -> None:
        ids = [d.id for d in scan(self._connector, flt)]
        for start in range(0, len(ids), 1000):
            self._connector.delete(ids[start : start + 1000])

    def clear(self) -> None:
        """Deletes every node (the collection stays)."""
        self._delete_matching(None)

    # -- reads -----------------------------------------------------------------------

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """The stored nodes with these ids (in that order) and/or matching ``filters``
        (without embeddings: vectors stay in the database)."""
        flt = to_portable(filters)
        if node_ids == []:
            return []
        if node_ids is not None and flt is None:
            docs = self._connector.get(list(node_ids))
        elif node_ids is None and flt is None:
            docs = list(scan(self._connector, None))
        else:
            docs = list(scan(self._connector, _with_ids(flt, node_ids)))
        return [_node(d) for d in docs]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top nodes for ``query`` in one database request.

        ``DEFAULT`` is dense, ``SPARSE`` lexical, ``HYBRID`` dense + sparse fused in the
        database (RRF, or weighted ``(alpha, 1 - alpha)`` when ``alpha`` is set) and reranked
        by ColBERT when stored. k: ``similarity_top_k``; ``sparse_top_k`` in SPARSE mode;
        ``hybrid_top_k`` (default ``similarity_top_k``) in HYBRID mode, where each signal
        contributes ``max(similarity_top_k, sparse_top_k)`` candidates when either top-k
        option is set. ``doc_ids`` / ``node_ids`` and ``filters`` restrict every stage.

        Raises:
            InputError: an unsupported mode or filter operator, or a mode the store cannot
                run (sparse / hybrid without BGE-M3).
        """
        _reject_unknown("query", kwargs)
        mode = _MODES.get(query.mode)
        if mode is None:
            raise InputError(
                f"query mode {query.mode.value!r} is not supported; use "
                f"{', '.join(m.value for m in _MODES)}"
            )
        k, hybrid = self._plan(query, mode)
        flt = to_portable(query.filters)
        if query.doc_ids:
            flt = _and(flt, In(REF_DOC_KEY, tuple(query.doc_ids)))
        if query.node_ids:
            flt = _and(flt, In(NODE_ID_KEY, tuple(query.node_ids)))
        hits = self._connector.search(
            self._query_embedding(query, mode, hybrid), k, mode=mode, filter=flt, hybrid=hybrid
        )
        return VectorStoreQueryResult(
            nodes=[_node(h) for h in hits],
            similarities=[h.score for h in hits],
            ids=[h.id for h in hits],
        )

    def _plan(self, query: VectorStoreQuery, mode: SearchMode) -> tuple[int, HybridOptions]:
        hybrid = self._hybrid
        if mode == "sparse":
            return query.sparse_top_k or query.similarity_top_k, hybrid
        if mode != "hybrid":
            return query.similarity_top_k, hybrid
        k = query.hybrid_top_k or query.similarity_top_k
        if query.alpha is not None:
            if not 0.0 <= query.alpha <= 1.0:
                raise InputError(f"alpha must be in [0, 1], got {query.alpha}")
            hybrid = HybridOptions(
                fusion="weighted",
                rrf_k=hybrid.rrf_k,
                weights=(float(query.alpha), 1.0 - float(query.alpha)),
                candidates=hybrid.candidates,
                rerank=hybrid.rerank,
            )
        if query.hybrid_top_k is not None or query.sparse_top_k is not None:
            candidates = max(k, query.similarity_top_k, query.sparse_top_k or 0)
            hybrid = HybridOptions(
                fusion=hybrid.fusion,
                rrf_k=hybrid.rrf_k,
                weights=hybrid.weights,
                candidates=candidates,
                rerank=hybrid.rerank,
            )
        return k, hybrid

    def _query_embedding(
        self, query: VectorStoreQuery, mode: SearchMode, hybrid: HybridOptions
    ) -> M3Embedding:
        spec = self._connector.spec
        if mode == "dense" and query.query_embedding is not None:
            return M3Embedding(dense=np.asarray(query.query_embedding, dtype=np.float32))
        if self._encoder is None:
            raise InputError(
                f"mode {mode!r} without a dense query embedding needs BGE-M3; this store has "
                "no encoder (dense-only collection): query in DEFAULT mode with an embedding"
            )
        if not query.query_str:
            raise InputError(
                f"a {mode!r} query needs query_str (the store encodes it) or, in DEFAULT mode, "
                "a query_embedding"
            )
        outputs = spec.query_outputs(mode, rerank=hybrid.rerank)
        return self._encoder.encode([query.query_str], **outputs)[0]

    # -- async twins (the sync calls in a worker thread) ---------------------------------

    async_add = _threaded(add)  # type: ignore[assignment]
    adelete = _threaded(delete)  # type: ignore[assignment]
    adelete_nodes = _threaded(delete_nodes)  # type: ignore[assignment]
    aclear = _threaded(clear)  # type: ignore[assignment]
    aget_nodes = _threaded(get_nodes)  # type: ignore[assignment]
    aquery = _threaded(query)  # type: ignore[assignment]


def _node(doc: Document | Hit) -> BaseNode:
    metadata = dict(doc.metadata)
    metadata.pop(NODE_ID_KEY, None)
    return metadata_dict_to_node(metadata, text=doc.text)


def _and(a: Filter | None, b: Filter) -> Filter:
    return b if a is None else And((a, b))


def _with_ids(flt: Filter | None, node_ids: list[str] | None) -> Filter | None:
    if node_ids is None:
        return flt
    return _and(flt, In(NODE_ID_KEY, tuple(node_ids)))


def _reject_unknown(method: str, kwargs: dict[str, Any]) -> None:
    # LlamaIndex passes **kwargs; a misspelt option silently ignored would hide the mistake.
    if kwargs:
        raise TypeError(f"M3VectorStore.{method}() got unexpected options: {', '.join(kwargs)}")
