"""``M3VectorStore``: a LangChain ``VectorStore`` backed by any m3vdb ``Connector``.

Two ways to embed, chosen by what ``embedding`` is:

- an m3vdb encoder: ``M3Encoder``, ``RemoteEncoder`` (one ``m3vdb serve`` shared by many
  processes), any ``m3vdb.Encoder``, or ``M3Embeddings`` wrapping one: the store writes every
  output the collection's ``IndexSpec`` holds (dense, sparse, ColBERT) and searches in any mode,
  ``hybrid`` by default. Pass ``mode``, ``filter`` and ``hybrid`` per call or through
  ``as_retriever(search_kwargs={...})``.
- any other LangChain ``Embeddings``: it yields one dense vector per text, so the
  collection must store dense only (``M3VectorStore.connect`` builds that spec: dimension
  from the embeddings, cosine metric because LangChain embeddings need not be normalised)
  and searches are dense. This is how LangChain's standard test suite drives the store.

With ``embedding=None`` texts go to the connector as they are, and the connector's own
encoder (``connect(..., encoder=...)``) embeds them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from m3vdb import Document, InputError
from m3vdb.connectors import connect
from m3vdb.connectors.base import Connector, FilterLike, HybridOptions, SearchMode
from m3vdb.indexing import Corpus, run
from m3vdb.indexing.chunking import user_metadata
from m3vdb.langchain._langchain import Embeddings, LCDocument, VectorStore
from m3vdb.langchain.embeddings import M3Embeddings
from m3vdb.schemas.data import M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import IndexSpec

_MODES: tuple[SearchMode, ...] = ("dense", "sparse", "colbert", "hybrid")


def spec_for_embedding(embedding: Embeddings | Encoder) -> IndexSpec:
    """The IndexSpec a new collection gets for ``embedding``.

    An m3vdb encoder (``M3Encoder``, ``RemoteEncoder``) / ``M3Embeddings``: all three outputs
    at the encoder's dimensions. Any other ``Embeddings``: dense only, its dimension measured
    on one probe text, cosine (``IndexSpec.for_dense_embeddings``).
    """
    encoder = _encoder_of(embedding)
    if encoder is not None:
        return IndexSpec.for_encoder(encoder)
    dim = len(embedding.embed_query("dimension probe"))  # type: ignore[union-attr]
    return IndexSpec.for_dense_embeddings(dim)


def _encoder_of(embedding: object) -> Encoder | None:
    if isinstance(embedding, Encoder):
        return embedding
    if isinstance(embedding, M3Embeddings):
        return embedding.encoder
    return None


def _to_langchain(doc: Document) -> LCDocument:
    return LCDocument(page_content=doc.text, metadata=user_metadata(doc.metadata), id=doc.id)


class _DenseEmbeddingsEncoder:
    """A LangChain ``Embeddings`` as an m3vdb ``Encoder`` of dense vectors only (what the
    indexing library takes); it cannot tokenize, so texts are stored whole."""

    def __init__(self, embeddings: Embeddings, dim: int) -> None:
        self._embeddings = embeddings
        self.dense_dim = dim
        self.colbert_dim = dim

    def encode(
        self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True, colbert: bool = True
    ) -> list[M3Embedding]:
        vectors = self._embeddings.embed_documents(list(texts))
        return [M3Embedding(dense=np.asarray(v, dtype=np.float32)) for v in vectors]


class M3VectorStore(VectorStore):
    """A LangChain vector store over one m3vdb collection.

    Example::

        from m3vdb.encoder import M3Encoder
        from m3vdb.langchain import M3VectorStore

        store = M3VectorStore.connect("m3vdb.db", collection="docs", embedding=M3Encoder())
        store.add_texts(["BGE-M3 is multilingual"], metadatas=[{"lang": "en"}])
        retriever = store.as_retriever(
            search_kwargs={"k": 5, "mode": "hybrid", "filter": {"lang": "en"}}
        )

    Args:
        connector: the collection (``connectors.connect(...)``); the store closes it only when
            it opened it itself (``connect`` / ``from_texts``) or ``owns_connector`` is set.
        embedding: an ``M3Encoder`` / ``RemoteEncoder`` / ``M3Embeddings``, any LangChain
            ``Embeddings`` (dense-only collections), or None (the connector's encoder embeds).
        mode: the default search mode; default: ``hybrid`` when the collection stores dense and
            sparse, else the one signal it stores.
        hybrid: default fusion / rerank options of ``mode="hybrid"``.
        batch_size: documents embedded and written per request in ``add_texts``.
        owns_connector: close the connector in :meth:`close`.

    Raises:
        InputError: a dense-only ``Embeddings`` with a collection that stores more than dense,
            or an unknown ``mode``.
    """

    def __init__(
        self,
        connector: Connector,
        *,
        embedding: Embeddings | Encoder | None = None,
        mode: SearchMode | None = None,
        hybrid: HybridOptions | None = None,
        batch_size: int = 64,
        owns_connector: bool = False,
    ) -> None:
        spec = connector.spec
        self._connector = connector
        self._encoder = _encoder_of(embedding)
        if embedding is not None and not isinstance(embedding, (Embeddings, Encoder)):
            raise TypeError(
                f"embedding must be an m3vdb encoder (M3Encoder, RemoteEncoder), a LangChain "
                f"Embeddings or None, got "
                f"{type(embedding).__name__}"
            )
        # A plain LangChain Embeddings: dense vectors computed here, nothing else.
        self._dense_embedding: Embeddings | None = (
            embedding if isinstance(embedding, Embeddings) and self._encoder is None else None
        )
        if self._dense_embedding is not None and (spec.sparse or spec.colbert or not spec.dense):
            raise InputError(
                f"{type(embedding).__name__} gives only a dense vector, but collection "
                f"{connector.collection!r} stores dense={spec.dense}, sparse={spec.sparse}, "
                f"colbert={spec.colbert}; pass an M3Encoder or RemoteEncoder, or open a dense-only "
                "collection "
                "(M3VectorStore.connect builds one for these embeddings)"
            )
        self._mode = self._check_mode(mode or ("dense" if self._dense_embedding else None))
        self._hybrid = hybrid
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        self._batch_size = batch_size
        self._owns = owns_connector

    # -- construction ------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        target: Any,
        *,
        collection: str,
        embedding: Embeddings | Encoder,
        spec: IndexSpec | None = None,
        mode: SearchMode | None = None,
        hybrid: HybridOptions | None = None,
    ) -> M3VectorStore:
        """Opens (creating it if needed) ``collection`` at ``target`` for ``embedding``.

        Args:
            target: what ``connectors.connect`` takes: a URL (``m3vdb.db`` for Milvus Lite,
                ``qdrant+memory://``, ``milvus://HOST:19530``...) or a native client.
            collection: the collection name.
            embedding: an m3vdb encoder / ``M3Embeddings`` or any LangChain ``Embeddings``.
            spec: what to store; default: :func:`spec_for_embedding`.
            mode: default search mode.
            hybrid: default hybrid options.
        """
        spec = spec or spec_for_embedding(embedding)
        connector = connect(
            target, collection=collection, encoder=_encoder_of(embedding), spec=spec
        )
        return cls(connector, embedding=embedding, mode=mode, hybrid=hybrid, owns_connector=True)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        target: Any = "m3vdb.db",
        collection: str = "langchain",
        spec: IndexSpec | None = None,
        mode: SearchMode | None = None,
        **kwargs: Any,
    ) -> M3VectorStore:
        """Opens ``collection`` at ``target`` (default: the Milvus Lite file ``m3vdb.db``) with
        :meth:`connect` and adds ``texts``. ``embedding`` may also be an m3vdb encoder."""
        _reject_unknown("from_texts", kwargs)
        store = cls.connect(
            target, collection=collection, embedding=embedding, spec=spec, mode=mode
        )
        try:
            store.add_texts(texts, metadatas, ids=ids)
        except BaseException:
            store.close()
            raise
        return store

    # -- properties --------------------------------------------------------------------

    @property
    def connector(self) -> Connector:
        """The underlying connector (for native features: ``count``, ``drop``...)."""
        return self._connector

    @property
    def embeddings(self) -> Embeddings | None:
        """The query embeddings: the LangChain ``Embeddings`` given, an ``M3Embeddings`` over
        the encoder given, or None when the connector embeds."""
        if self._encoder is not None:
            return M3Embeddings(self._encoder)
        return self._dense_embedding

    def close(self) -> None:
        """Closes the connector when this store opened it."""
        if self._owns:
            self._connector.close()

    def __enter__(self) -> M3VectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embeds and writes ``texts``, upserting by id; a missing id (None) gets a UUID4.

        Returns:
            The ids, in the order of ``texts``.

        Raises:
            InputError: ``metadatas`` / ``ids`` lengths differ from ``texts``, or a document
                is refused by the connector (empty text, non-JSON metadata...).
        """
        _reject_unknown("add_texts", kwargs)
        items = list(texts)
        for name, values in (("metadatas", metadatas), ("ids", ids)):
            if values is not None and len(values) != len(items):
                raise InputError(f"{len(items)} texts but {len(values)} {name}")
        out_ids = [i if i else uuid.uuid4().hex for i in (ids or [None] * len(items))]
        metas = [dict(m) for m in metadatas] if metadatas is not None else [{}] * len(items)
        docs = [Document(i, t, m) for i, t, m in zip(out_ids, items, metas)]
        # the indexing library m3vdb index runs: long texts as windows, unchanged texts not
        # encoded again, a changed one replaced as a whole
        run(
            self._connector,
            Corpus.from_documents(docs),
            encoder=self._indexing_encoder(),
            batch_size=batch_size or self._batch_size,
            strict=True,
        )
        return out_ids

    def _indexing_encoder(self) -> Encoder | None:
        if self._encoder is not None:
            return self._encoder
        if self._dense_embedding is not None:
            return _DenseEmbeddingsEncoder(self._dense_embedding, self._connector.spec.dense_dim)
        return getattr(self._connector, "encoder", None)  # the connector's own encoder

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Deletes these ids; unknown ids are ignored.

        Raises:
            InputError: ``ids`` is None (deleting everything is ``store.connector.drop()``).
        """
        _reject_unknown("delete", kwargs)
        if ids is None:
            raise InputError(
                "delete() needs the ids to delete; to delete the whole collection call "
                "store.connector.drop()"
            )
        ids = list(ids)
        self._connector.delete(ids)
        if ids:  # and the windows of long texts
            self._connector.delete_where({"parent_id": {"in": ids}})
        return True

    # -- reads -------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[LCDocument]:
        """The stored documents with these ids, in the order given; missing ids left out."""
        return [_to_langchain(d) for d in self._connector.get(list(ids))]

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: FilterLike = None,
        mode: SearchMode | None = None,
        hybrid: HybridOptions | None = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        """Top-``k`` documents for ``query``.

        Args:
            query: the query text.
            k: how many documents.
            filter: a metadata filter dict (``{"lang": "en", "year": {"gte": 2020}}``, see
                ``m3vdb.schemas.filters``) or a ``m3vdb.schemas.filters`` object.
            mode: "dense", "sparse", "colbert" or "hybrid"; default: the store's.
            hybrid: fusion / rerank options for ``mode="hybrid"``.
        """
        _reject_unknown("similarity_search", kwargs)
        pairs = self.similarity_search_with_score(query, k, filter=filter, mode=mode, hybrid=hybrid)
        return [doc for doc, _ in pairs]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        filter: FilterLike = None,
        mode: SearchMode | None = None,
        hybrid: HybridOptions | None = None,
        **kwargs: Any,
    ) -> list[tuple[LCDocument, float]]:
        """Like :meth:`similarity_search`, with the score the database ranked by (higher is
        better; its scale depends on the mode, see ``connectors.base``)."""
        _reject_unknown("similarity_search_with_score", kwargs)
        chosen = self._check_mode(mode)
        hits = self._connector.search(
            self._query(query, chosen),
            k,
            mode=chosen,
            filter=filter,
            hybrid=hybrid or self._hybrid,
        )
        return [(_to_langchain(Document(h.id, h.text, h.metadata)), h.score) for h in hits]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, *, filter: FilterLike = None, **kwargs: Any
    ) -> list[LCDocument]:
        """Top-``k`` documents for a dense query vector (dense mode)."""
        _reject_unknown("similarity_search_by_vector", kwargs)
        query = M3Embedding(dense=np.asarray(embedding, dtype=np.float32))
        hits = self._connector.search(query, k, mode="dense", filter=filter)
        return [_to_langchain(Document(h.id, h.text, h.metadata)) for h in hits]

    def _query(self, query: str, mode: SearchMode) -> str | M3Embedding:
        if self._dense_embedding is not None:
            if mode != "dense":
                raise InputError(
                    f"mode={mode!r} needs BGE-M3's sparse/ColBERT outputs; this store embeds "
                    f"with {type(self._dense_embedding).__name__} (dense only): use mode='dense' "
                    "or an m3vdb encoder (M3Encoder, RemoteEncoder)"
                )
            return M3Embedding(
                dense=np.asarray(self._dense_embedding.embed_query(query), np.float32)
            )
        if self._encoder is not None:
            rerank = (self._hybrid or HybridOptions()).rerank
            outputs = self._connector.spec.query_outputs(mode, rerank=rerank)
            return self._encoder.encode([query], **outputs)[0]
        return query  # the connector's encoder embeds it

    def _check_mode(self, mode: SearchMode | None) -> SearchMode:
        if mode is None:
            return getattr(self, "_mode", None) or self._connector.spec.default_mode
        if mode not in _MODES:
            raise InputError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
        return mode

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Only dense scores are cosines in [-1, 1]; sparse, MaxSim and fusion scores are not
        # bounded, so no honest [0, 1] relevance exists for them.
        if self._mode == "dense":
            return self._cosine_similarity_to_relevance
        raise NotImplementedError(
            f"relevance scores in [0, 1] exist only for mode='dense' (cosine); this store "
            f"searches in mode={self._mode!r}: use similarity_search_with_score"
        )

    @staticmethod
    def _cosine_similarity_to_relevance(score: float) -> float:
        # float32 engines return a self-cosine a hair above 1
        return min(1.0, max(0.0, (1.0 + score) / 2.0))


def _reject_unknown(method: str, kwargs: Mapping[str, Any]) -> None:
    # LangChain's signatures carry **kwargs; silently ignoring a misspelt option would hide
    # the mistake (a filter that filters nothing).
    if kwargs:
        raise TypeError(f"M3VectorStore.{method}() got unexpected options: {', '.join(kwargs)}")
