"""The front half of every connector's ``search``: one validation of ``k``, the mode,
``HybridOptions``, the filter and the query, producing a :class:`SearchPlan` that a backend
compiles (filter, native query) and runs. Pure: no database client, testable on its own.

One behaviour for every backend, pinned by the contract suite:

- ``mode="hybrid"`` fuses dense AND sparse: on a collection that lacks either, it is an
  InputError naming the modes that collection can answer (never a silent fallback to one
  signal, whose scores would mean something else).
- A mode needing an output the collection does not store is an InputError.
- A sparse query without any weight > 0 matches nothing: ``mode="sparse"`` returns ``[]``
  and hybrid fuses the dense candidates alone.
- ``HybridOptions`` are checked by their constructor (see ``connectors.base``); a backend adds
  only its own result limit (``max_k``), which also bounds the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m3vdb.connectors.base import FilterLike, Fusion, HybridOptions, SearchMode
from m3vdb.errors import InputError
from m3vdb.schemas.data import FLOAT32_MIN_NORMAL, M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.filters import Filter, parse_filter
from m3vdb.schemas.muvera import fde_encoder
from m3vdb.schemas.spec import IndexSpec

SEARCH_MODES: tuple[SearchMode, ...] = ("dense", "sparse", "colbert", "hybrid")


@dataclass(frozen=True, eq=False)
class SearchPlan:
    """One validated search.

    Attributes:
        mode: the search mode.
        k: how many hits to return.
        filter: the parsed portable filter (None: no filter); applies to every stage.
        dense: the query's dense vector, float32 ``(dim,)``; set for ``dense`` and ``hybrid``.
        sparse: the query's positive sparse weights; set for ``sparse`` and ``hybrid`` (may be
            empty: then it matches nothing).
        colbert: the query's ColBERT rows, float32 ``(n, dim)``; set for ``colbert`` and for
            ``hybrid`` with ``rerank``.
        fusion, rrf_k, weights: how hybrid fuses (from HybridOptions).
        candidates: candidates per signal before fusion (and reranked), >= k.
        rerank: hybrid reranks the fused candidates by ColBERT MaxSim.
        text: the query text when the query was given as text (Elasticsearch's BM25 uses it).
        fde: the query's MUVERA encoding (``m3vdb.schemas.muvera``), float32
            ``(spec.colbert_fde.dim,)``; set for ``colbert`` on a collection with
            ``IndexSpec.colbert_fde``: the engine then takes ``candidates`` documents by it and
            reranks them by MaxSim (``candidates``: ``HybridOptions.candidates`` when given,
            else ``ColbertFde.candidates``, at least ``k``).
    """

    mode: SearchMode
    k: int
    filter: Filter | None
    dense: np.ndarray | None
    sparse: dict[int, float] | None
    colbert: np.ndarray | None
    fusion: Fusion
    rrf_k: int
    weights: tuple[float, float]
    candidates: int
    rerank: bool
    text: str | None = None
    fde: np.ndarray | None = None

    @property
    def matches_nothing(self) -> bool:
        """A sparse search whose query has no weight > 0."""
        return self.mode == "sparse" and not self.sparse


def build_plan(
    query: str | M3Embedding,
    k: int,
    *,
    mode: str,
    filter: FilterLike,
    hybrid: HybridOptions | None,
    spec: IndexSpec,
    encoder: Encoder | None,
    collection: str,
    max_k: int | None = None,
) -> SearchPlan:
    """Validates everything a search takes and encodes the query with only the outputs the
    mode needs.

    Raises:
        TypeError: the query is neither a str nor an M3Embedding, or hybrid is not
            HybridOptions.
        InputError: a bad ``k``, mode, filter, option or query vector; a mode the collection
            cannot answer; a text query without an encoder.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InputError(f"k must be a positive int, got {k!r}")
    if max_k is not None and k > max_k:
        raise InputError(f"k={k} exceeds this database's limit of {max_k} results")
    if mode not in SEARCH_MODES:
        raise InputError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
    if hybrid is not None and not isinstance(hybrid, HybridOptions):
        raise TypeError(f"hybrid must be HybridOptions, got {type(hybrid).__name__}")
    options = hybrid if hybrid is not None else HybridOptions()
    stored = [name for name in ("dense", "sparse", "colbert") if getattr(spec, name)]
    if mode == "hybrid" and not (spec.dense and spec.sparse):
        raise InputError(
            f"mode='hybrid' fuses dense and sparse, but collection {collection!r} stores only "
            f"{stored}; search it with mode={stored[0]!r}"
            + (f" (or {stored[1:]})" if len(stored) > 1 else "")
        )
    if mode != "hybrid" and mode not in stored:
        raise InputError(
            f"mode={mode!r} needs {mode} vectors, but collection {collection!r} stores only "
            f"{stored} (see its IndexSpec); search with one of those modes, or index with "
            f"{mode} enabled"
        )
    candidates = options.candidate_count(k)
    if candidates < k:
        raise InputError(
            f"HybridOptions.candidates={candidates} is below k={k}: each signal must bring at "
            "least k candidates; raise candidates or lower k"
        )
    if max_k is not None and candidates > max_k:
        raise InputError(
            f"HybridOptions.candidates={candidates} exceeds this database's limit of {max_k}"
        )
    rerank = mode == "hybrid" and options.rerank and spec.colbert
    outputs = spec.query_outputs(mode, rerank=options.rerank)
    need_dense, need_sparse, need_colbert = (outputs[n] for n in ("dense", "sparse", "colbert"))
    parsed = parse_filter(filter)
    emb = _encode(query, encoder, **outputs)
    colbert = _colbert(emb, spec) if need_colbert else None
    fde = None
    if mode == "colbert" and spec.colbert_fde is not None and colbert is not None:
        fde = fde_encoder(spec.colbert_fde, spec.colbert_dim).query(colbert)
        if options.candidates is None:
            candidates = max(k, spec.colbert_fde.candidates)
            if max_k is not None:
                candidates = min(candidates, max_k)
    return SearchPlan(
        mode=mode,  # type: ignore[arg-type]  # checked against SEARCH_MODES above
        k=k,
        filter=parsed,
        dense=_dense(emb, spec) if need_dense else None,
        sparse=_sparse(emb) if need_sparse else None,
        colbert=colbert,
        fusion=options.fusion,
        rrf_k=options.rrf_k,
        weights=options.weights,
        candidates=candidates,
        rerank=bool(rerank),
        text=query if isinstance(query, str) else None,
        fde=fde,
    )


def _encode(
    query: str | M3Embedding, encoder: Encoder | None, *, dense: bool, sparse: bool, colbert: bool
) -> M3Embedding:
    """The query's embedding: given, or encoded with only the outputs the mode needs."""
    if isinstance(query, M3Embedding):
        return query
    if not isinstance(query, str):
        raise TypeError(f"query must be a str or an M3Embedding, got {type(query).__name__}")
    if not query.strip():
        raise InputError("the query is empty; give a text to search for")
    if encoder is None:
        raise InputError("a text query needs an encoder: pass encoder=M3Encoder(...) to connect()")
    return encoder.encode([query], dense=dense, sparse=sparse, colbert=colbert)[0]


def _dense(q: M3Embedding, spec: IndexSpec) -> np.ndarray:
    dim = spec.dense_dim
    if q.dense is None or np.shape(q.dense) != (dim,):
        raise InputError(
            f"the query needs a dense vector of shape ({dim},), got "
            f"{None if q.dense is None else np.shape(q.dense)}"
        )
    dense = np.asarray(q.dense, dtype=np.float32)
    if not np.all(np.isfinite(dense)):
        raise InputError("the query's dense vector contains NaN or infinity")
    return dense


def _sparse(q: M3Embedding) -> dict[int, float]:
    if q.sparse is None:
        raise InputError("the query needs sparse weights; encode it with sparse=True")
    for token, weight in q.sparse.items():
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
            raise InputError(f"the query's sparse key {token!r} is not a token id (int)")
        if not 0 <= int(token) < 2**32:
            raise InputError(f"the query's sparse key {token!r} is outside [0, 2^32)")
        if not np.isfinite(weight):
            raise InputError("the query's sparse weights contain NaN or infinity")
    # weights below the smallest normal float32 add nothing to a score and Elasticsearch
    # refuses them: they count as 0, like the special tokens the encoder drops
    return {int(t): float(w) for t, w in q.sparse.items() if w >= FLOAT32_MIN_NORMAL}


def _colbert(q: M3Embedding, spec: IndexSpec) -> np.ndarray:
    rows, dim = q.colbert, spec.colbert_dim
    if rows is None or np.ndim(rows) != 2 or np.shape(rows)[1] != dim or not len(rows):
        raise InputError(
            f"the query needs ColBERT rows of shape (n >= 1, {dim}), got "
            f"{None if rows is None else np.shape(rows)}"
        )
    out = np.asarray(rows, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise InputError("the query's ColBERT rows contain NaN or infinity")
    return out
