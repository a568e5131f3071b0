"""The one copy of each scoring and fusion formula the runtime needs (numpy only).

Test oracles that reproduce a database's own formulas live under ``tests/``, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


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
