"""Relevance scores with FlagEmbedding's semantics.

- dense: dot product of the (normalised) dense vectors.
- sparse ("lexical matching"): sum over token ids present in both of q_w * p_w.
- colbert: the MEAN over query rows of the best dot product with any passage row.
  Databases' MaxSim (Milvus MAX_SIM_IP, Qdrant MAX_SIM, Elasticsearch maxSimDotProduct) is
  the SUM over query rows: ``colbert_maxsim`` gives that scale;
  ``colbert_score = colbert_maxsim / n_query_rows``.
- combined: FlagEmbedding's weighted average (w_dense*dense + w_sparse*sparse +
  w_colbert*colbert) / (w_dense + w_sparse + w_colbert).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from m3vdb.schemas.data import M3Embedding
from m3vdb.schemas.errors import InputError
from m3vdb.schemas.scoring import maxsim


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


def colbert_maxsim(query: np.ndarray, passage: np.ndarray) -> float:
    """The databases' MaxSim: SUM over query rows of the max dot product over passage rows."""
    return maxsim(query, passage)


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
