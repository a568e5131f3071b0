"""``Collection``: the front of every database, written once over an :class:`Engine`.

It streams writes in batches, validates every document and embedding (``connectors.common``),
encodes through the ``Encoder`` protocol, builds the search plan (``connectors.plan``), shows
progress, and checks ids, so the backends cannot drift apart in what they accept. The engine
runs the native calls (retried and translated by ``Engine.call``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from m3vdb.connectors.base import FilterLike, HybridOptions, SearchMode, UpsertItem
from m3vdb.connectors.common import batched, embed_batch
from m3vdb.connectors.engine import Engine
from m3vdb.connectors.plan import SearchPlan, build_plan
from m3vdb.errors import InputError, SchemaMismatchError
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import parse_filter
from m3vdb.schemas.muvera import fde_encoder
from m3vdb.schemas.pooling import pool_rows
from m3vdb.schemas.spec import IndexSpec
from m3vdb.schemas.strings import check_id

if TYPE_CHECKING:
    from m3vdb.schemas.encoding import Encoder

SelfT = TypeVar("SelfT", bound="Collection")


class Collection:
    """A collection in one database holding BGE-M3's outputs in native fields; implements
    ``m3vdb.connectors.base.Connector`` and ``SupportsScan``. ``m3vdb.connect`` returns one.

    A context manager: ``with connect(...) as store:`` closes the client m3vdb created from
    a URL on exit (a client passed in stays open).
    """

    def __init__(self, engine: Engine, *, encoder: Encoder | None = None) -> None:
        """Args:
        engine: the opened engine.
        encoder: encodes texts on upsert and search (None: precomputed embeddings only).

        Raises:
            SchemaMismatchError: the encoder's dimensions differ from the collection's (the
                engine is closed).
        """
        if encoder is not None:
            try:
                check_encoder(encoder, engine.spec, engine)
            except BaseException:
                engine.close()
                raise
        self._engine = engine
        self._encoder = encoder

    # -- properties and lifetime --------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine every native call goes through."""
        return self._engine

    @property
    def collection(self) -> str:
        """The collection (index) name."""
        return self._engine.collection

    @property
    def spec(self) -> IndexSpec:
        """What the collection stores (as given, or as the collection recorded it)."""
        return self._engine.spec

    @property
    def client(self) -> Any:
        """The underlying native client, for what m3vdb does not wrap."""
        return self._engine.client

    @property
    def encoder(self) -> Encoder | None:
        """The encoder texts are encoded with on upsert and search (None: precomputed
        embeddings only)."""
        return self._encoder

    def close(self) -> None:
        """Releases the client if m3vdb created it (from a URL); a client passed in stays
        open. The collection and its data stay."""
        self._engine.close()

    def __enter__(self: SelfT) -> SelfT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # What one database adds (Milvus's capabilities and colbert_layout, edge's optimize,
        # get_embeddings...) stays reachable on the collection.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._engine, name)

    # -- writes -------------------------------------------------------------------------

    def upsert(
        self,
        items: Iterable[UpsertItem],
        *,
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> int:
        """Encodes (unless embeddings are given) and writes documents, idempotent by id.

        Streams ``items`` in batches of ``batch_size``; each batch is validated completely
        (types, shapes, NaN, sparse weights, then the database's own limits) before any of it
        is written. Transient errors are retried with backoff; a failing batch stops the
        stream (earlier batches stay written).

        Returns:
            The number of documents written.
        """
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc=f"upsert {self.collection}", unit="doc")
        written = 0
        try:
            for batch in batched(items, batch_size):
                pairs = embed_batch(batch, self.spec, self._encoder, offset=written)
                pairs = pooled_pairs(pairs, self.spec)
                self._engine.write(pairs, fde=document_fdes(pairs, self.spec))
                written += len(pairs)
                if bar is not None:
                    bar.update(len(pairs))
        finally:
            if bar is not None:
                bar.close()
        return written

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes these ids (and anything stored for them); unknown ids are ignored."""
        checked = check_ids(ids)
        if checked:
            self._engine.delete_ids(checked)

    def delete_where(self, filter: FilterLike) -> None:
        """Deletes every document matching ``filter`` (a portable filter; required: use
        :meth:`drop` to delete everything)."""
        flt = parse_filter(filter)
        if flt is None:
            raise InputError("delete_where needs a filter; drop() deletes the whole collection")
        self._engine.delete_where(flt)

    def drop(self) -> None:
        """Deletes the collection and everything m3vdb created for it."""
        self._engine.drop()

    # -- reads --------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids are left out."""
        checked = check_ids(ids)
        return self._engine.get(checked) if checked else []

    def scan(self, filter: FilterLike = None, *, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document matching ``filter`` (all of them without one), read in pages
        of ``batch_size``; order unspecified."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        flt = parse_filter(filter)
        return self._engine.scan(flt, batch_size=batch_size)

    def scan_embeddings(
        self, filter: FilterLike = None, *, batch_size: int = 256
    ) -> Iterator[list[tuple[Document, M3Embedding]]]:
        """Every stored entry matching ``filter`` with its stored embedding, in batches of at
        most ``batch_size`` (memory bounded by a batch); outputs the collection does not store
        are None. What ``m3vdb export`` and ``m3vdb copy`` read.

        Raises:
            UnsupportedCapabilityError: the database cannot give stored vectors back
                (Elasticsearch: m3vdb keeps vectors out of ``_source``).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        flt = parse_filter(filter)
        return self._engine.scan_embeddings(flt, batch_size=batch_size)

    def count(self) -> int:
        """Number of documents stored."""
        return self._engine.count()

    def search(
        self,
        query: str | M3Embedding,
        k: int = 10,
        *,
        mode: SearchMode = "hybrid",
        filter: FilterLike = None,
        hybrid: HybridOptions | None = None,
        group: bool = False,
    ) -> list[Hit]:
        """Top-``k`` documents for ``query``, in one database request where the database
        allows; ``filter`` applies to every stage. See ``m3vdb.connectors.base`` for the score
        scales and ``m3vdb.connectors.plan`` for what is accepted (the same on every backend).

        ``group=True`` counts the windows of a long document (entries sharing a
        ``parent_id``, as ``m3vdb.index`` stores them) as one: each document's best-scoring
        entry is its hit, and ``k`` documents come back; the database is asked for more
        entries (up to :data:`GROUP_FETCH_LIMIT`) while windows of a few documents fill
        the top.

        Raises:
            InputError: a bad ``k``, mode, option, filter or query vector, or a mode the
                collection cannot answer.
            TypeError: a query or option of the wrong type.
            BackendError: the database failed.
        """
        return self._search(query, k, mode=mode, filter=filter, hybrid=hybrid, group=group)

    def _search(
        self,
        query: str | M3Embedding,
        k: int,
        *,
        mode: str,
        filter: FilterLike,
        hybrid: HybridOptions | None,
        group: bool,
        adjust: Callable[[SearchPlan], SearchPlan] | None = None,
    ) -> list[Hit]:
        """:meth:`search`, with ``adjust`` applied to each plan before it runs (a subclass's
        per-call option, e.g. Elasticsearch's BM25)."""

        def plan_for(q: str | M3Embedding, n: int) -> SearchPlan:
            plan = self._plan(q, n, mode=mode, filter=filter, hybrid=hybrid)
            return adjust(plan) if adjust is not None else plan

        if not group:
            return self._execute(plan_for(query, k))
        limit = min(GROUP_FETCH_LIMIT, self._engine.max_k or GROUP_FETCH_LIMIT)
        fetch = min(max(k, k * 5 + 20), max(limit, k))
        plan = plan_for(query, fetch)
        # the query is encoded once: a larger fetch re-plans from the plan's own vectors
        encoded = M3Embedding(dense=plan.dense, sparse=plan.sparse, colbert=plan.colbert)
        while True:
            hits = self._execute(plan)
            best = best_per_parent(hits, k)
            if len(best) >= k or len(hits) < fetch or fetch >= limit:
                return best
            fetch = min(fetch * 4, limit)
            plan = replace(plan_for(encoded, fetch), text=plan.text)

    def _plan(
        self,
        query: str | M3Embedding,
        k: int,
        *,
        mode: str,
        filter: FilterLike,
        hybrid: HybridOptions | None,
    ) -> SearchPlan:
        return build_plan(
            query,
            k,
            mode=mode,
            filter=filter,
            hybrid=hybrid,
            spec=self.spec,
            encoder=self._encoder,
            collection=self.collection,
            max_k=self._engine.max_k,
        )

    def _execute(self, plan: SearchPlan) -> list[Hit]:
        if plan.matches_nothing:
            return []  # no token of the query has a weight: nothing can match
        return self._engine.run(plan)


#: The most entries a grouped search asks the database for to fill ``k`` documents.
GROUP_FETCH_LIMIT = 1000


def parent_of(hit: Hit) -> str:
    """The document an entry belongs to: its ``parent_id`` (a window of a long document),
    else its own id."""
    parent = hit.metadata.get("parent_id")
    return parent if isinstance(parent, str) and parent else hit.id


def best_per_parent(hits: Sequence[Hit], k: int) -> list[Hit]:
    """The first (best-ranked) hit of each document, at most ``k``."""
    out: list[Hit] = []
    seen: set[str] = set()
    for hit in hits:
        parent = parent_of(hit)
        if parent not in seen:
            seen.add(parent)
            out.append(hit)
            if len(out) == k:
                break
    return out


def pooled_pairs(
    pairs: Sequence[tuple[Document, M3Embedding]], spec: IndexSpec
) -> list[tuple[Document, M3Embedding]]:
    """The batch with each document's ColBERT rows pooled by ``IndexSpec.colbert_pool_factor``
    (:func:`m3vdb.schemas.pooling.pool_rows`; unchanged at 1). Here, in the one write path,
    so every surface stores pooled rows and the MUVERA encoding is of the rows stored."""
    factor = spec.colbert_pool_factor
    if factor <= 1 or not spec.colbert:
        return list(pairs)
    return [
        (doc, emb if emb.colbert is None else replace(emb, colbert=pool_rows(emb.colbert, factor)))
        for doc, emb in pairs
    ]


def document_fdes(
    pairs: Sequence[tuple[Document, M3Embedding]], spec: IndexSpec
) -> np.ndarray | None:
    """The MUVERA encodings of a validated batch's ColBERT rows, ``(len(pairs), dim)``, for a
    collection with ``IndexSpec.colbert_fde`` (None otherwise). Computed here, in the one write
    path every surface takes, so no engine can store a document without its FDE."""
    if spec.colbert_fde is None:
        return None
    encoder = fde_encoder(spec.colbert_fde, spec.colbert_dim)
    missing = [doc.id for doc, emb in pairs if emb.colbert is None]
    if missing:
        raise InputError(
            f"document {missing[0]!r} has no ColBERT rows, but the collection stores their "
            "MUVERA encoding (IndexSpec.colbert_fde): encode it with colbert=True"
        )
    return encoder.documents([emb.colbert for _, emb in pairs])  # type: ignore[misc]


def check_ids(ids: Sequence[str]) -> list[str]:
    """``ids`` as a list; InputError for a single string or an id that is not a non-empty
    string of valid Unicode (no stored document has one)."""
    if isinstance(ids, str):
        raise InputError("pass a list of ids, not a single string")
    return [check_id(i) for i in ids]


def check_encoder(encoder: Encoder, spec: IndexSpec, engine: Engine | None = None) -> None:
    """SchemaMismatchError when the encoder's dimensions differ from the collection's, naming
    both (and the models, when known)."""
    dims = (int(encoder.dense_dim), int(encoder.colbert_dim))
    expected = (spec.dense_dim, spec.colbert_dim)
    if dims == expected:
        return
    from m3vdb.schemas.spec import model_of

    built = f" (built with model {spec.model!r})" if spec.model else ""
    model = model_of(encoder)
    given = f" (model {model!r})" if model else ""
    if engine is None:
        raise SchemaMismatchError(
            f"the encoder produces dense/ColBERT dimensions {dims}{given}, the IndexSpec says "
            f"{expected}; build the spec with IndexSpec.for_encoder(encoder)"
        )
    where = f"{engine.database} {engine.kind} {engine.collection!r}"
    raise SchemaMismatchError(
        f"{where} holds dense/ColBERT dimensions {expected}{built}; the encoder produces "
        f"{dims}{given}. Use the encoder the collection was built with, or another collection "
        "name (or drop it to rebuild it with this encoder)"
    )
