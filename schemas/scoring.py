"""The one copy of each scoring and fusion formula (numpy only).

Two scales, kept apart:

- The databases' (what the engines compute and the runtime reproduces): ColBERT MaxSim is the
  SUM over query rows of the best dot product (:func:`maxsim`); :func:`rrf` and
  :func:`weighted_sum` fuse ranked lists as Milvus, Qdrant and Elasticsearch do.
- FlagEmbedding's (relevance with the reference's semantics):

  - dense: dot product of the (normalised) dense vectors.
  - sparse ("lexical matching"): sum over token ids present in both of q_w * p_w.
  - colbert: the MEAN over query rows of the best dot product with any passage row.
    Databases' MaxSim (Milvus MAX_SIM_IP, Qdrant MAX_SIM, Elasticsearch maxSimDotProduct) is
    the SUM over query rows: ``colbert_maxsim`` gives that scale;
    ``colbert_score = colbert_maxsim / n_query_rows``.
  - combined: FlagEmbedding's weighted average (w_dense*dense + w_sparse*sparse +
    w_colbert*colbert) / (w_dense + w_sparse + w_colbert).

Test oracles that reproduce a database's own formulas live under ``tests/``, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from m3vdb.errors import InputError
from m3vdb.schemas.data import M3Embedding


def maxsim(query: np.ndarray, passage: np.ndarray) -> float:
    """ColBERT MaxSim as the databases define it (Milvus ``MAX_SIM_IP``, Qdrant ``MAX_SIM``,
    Elasticsearch ``maxSimDotProduct``): the SUM over query rows of the best dot product with
    any passage row. FlagEmbedding's colbert score is this divided by the query's row count."""
    q = np.asarray(query, dtype=np.float32)
    p = np.asarray(passage, dtype=np.float32)
    return float((q @ p.T).max(axis=1).sum())


def rrf(ranked: Sequence[Sequence[str]], k: float) -> dict[str, float]:
    """Reciprocal rank fusion: sum over the lists of ``1 / (k + rank)`` with the 1-based rank
    (Milvus's RRFRanker and Elasticsearch's ``rank_constant``); a list a document is absent
    from adds nothing."""
    out: dict[str, float] = {}
    for ids in ranked:
        for rank, doc_id in enumerate(ids, start=1):
            out[doc_id] = out.get(doc_id, 0.0) + 1.0 / (k + rank)
    return out


def weighted_sum(
    scores: Sequence[Mapping[str, float]], weights: Sequence[float]
) -> dict[str, float]:
    """Sum over the lists of ``weight * score``; a document missing from a list adds 0 for it
    (Elasticsearch's linear retriever with ``normalizer: none``, Qdrant's formula fusion)."""
    out: dict[str, float] = {}
    for per_list, weight in zip(scores, weights):
        for doc_id, score in per_list.items():
            out[doc_id] = out.get(doc_id, 0.0) + weight * score
    return out


# --------------------------------------------------------------------------- FlagEmbedding's scores


def _need(value: object, what: str) -> None:
    if value is None:
        raise InputError(f"both embeddings need a {what} output; encode with {what}=True")


def dense_score(query: M3Embedding, passage: M3Embedding) -> float:
    _need(query.dense, "dense")
    _need(passage.dense, "dense")
    return float(np.dot(query.dense, passage.dense))  # type: ignore[arg-type]


def lexical_score(query: Mapping[int, float], passage: Mapping[int, float]) -> float:
    """Sum over shared token ids of the product of weights."""
    if len(passage) < len(query):
        query, passage = passage, query
    return float(sum(w * passage[t] for t, w in query.items() if t in passage))


def sparse_score(query: M3Embedding, passage: M3Embedding) -> float:
    _need(query.sparse, "sparse")
    _need(passage.sparse, "sparse")
    return lexical_score(query.sparse, passage.sparse)  # type: ignore[arg-type]


colbert_maxsim = maxsim  # the databases' MaxSim under FlagEmbedding's naming


def colbert_score(query: M3Embedding, passage: M3Embedding) -> float:
    """FlagEmbedding's colbert score: MaxSim divided by the number of query rows (a mean)."""
    _need(query.colbert, "colbert")
    _need(passage.colbert, "colbert")
    q = query.colbert
    return colbert_maxsim(q, passage.colbert) / q.shape[0]  # type: ignore[union-attr,arg-type]


def combined_score(
    query: M3Embedding,
    passage: M3Embedding,
    *,
    weights: tuple[float, float, float] = (0.4, 0.2, 0.4),
) -> float:
    """FlagEmbedding's weighted average of dense, sparse and colbert scores.

    ``weights`` = (dense, sparse, colbert); a zero weight skips that signal, so its output
    may be None.
    """
    w_dense, w_sparse, w_colbert = weights
    total = w_dense + w_sparse + w_colbert
    if min(weights) < 0 or total <= 0:
        raise InputError(f"weights must be >= 0 with a positive sum, got {weights}")
    score = 0.0
    if w_dense:
        score += w_dense * dense_score(query, passage)
    if w_sparse:
        score += w_sparse * sparse_score(query, passage)
    if w_colbert:
        score += w_colbert * colbert_score(query, passage)
    return score / total
