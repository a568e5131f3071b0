"""Test oracles: the databases' own fusion formulas, reproduced independently of the runtime
package (``m3vdb.schemas.scoring``) so that a wrong runtime formula cannot pass by agreeing
with itself."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """SUM over query rows of the best dot product with any document row (float64)."""
    q = np.asarray(query, dtype=np.float64)
    d = np.asarray(doc, dtype=np.float64)
    return float(sum(max(float(row @ other) for other in d) for row in q))


def rrf_fusion(ranked_ids: Sequence[Sequence[str]], k: float = 60) -> list[tuple[str, float]]:
    """Milvus's RRFRanker: ``score(d) = sum over lists of 1 / (k + rank_d)``, rank 1-based;
    sorted by score descending, ties by id ascending. Source: milvus-io/milvus
    ``internal/util/function/rerank/rrf_function.go`` (2.6), ``internal/proxy/reScorer.go``
    (2.4/2.5). Milvus computes in float32: compare with a tolerance of about 1e-6."""
    scores: dict[str, float] = {}
    for ids in ranked_ids:
        for position, doc_id in enumerate(ids):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + position + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def milvus_normalize(score: float, metric: str) -> float:
    """Milvus's WeightedRanker normalisation (``norm_score=True``): IP ``0.5 + atan(s)/pi``;
    COSINE ``(1 + s)/2``; BM25 ``2 atan(s)/pi``; distances ``1 - 2 atan(d)/pi``. Source:
    ``internal/util/function/rerank/util.go`` ``getNormalizeFunc``."""
    metric = metric.upper()
    if metric == "IP":
        return 0.5 + math.atan(score) / math.pi
    if metric == "COSINE":
        return (1.0 + score) * 0.5
    if metric == "BM25":
        return 2.0 * math.atan(score) / math.pi
    return 1.0 - 2.0 * math.atan(score) / math.pi


def milvus_weighted_fusion(
    scored: Sequence[Mapping[str, float]], weights: Sequence[float], metrics: Sequence[str]
) -> list[tuple[str, float]]:
    """Milvus's WeightedRanker: sum over the requests that returned ``d`` of
    ``w_i * normalize_i(s_i(d))`` (no renormalisation); sorted by score, ties by id. Measured
    equal on Milvus Lite 2.5.1, which normalises this way whatever ``norm_score`` says."""
    if not (len(scored) == len(weights) == len(metrics)):
        raise ValueError("milvus_weighted_fusion needs one weight and one metric per request")
    totals: dict[str, float] = {}
    for hits, weight, metric in zip(scored, weights, metrics):
        for doc_id, score in hits.items():
            totals[doc_id] = totals.get(doc_id, 0.0) + weight * milvus_normalize(score, metric)
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def linear_fusion(
    scores: Sequence[Mapping[str, float]], weights: Sequence[float]
) -> dict[str, float]:
    """Elasticsearch's linear retriever with ``normalizer: none`` (and Qdrant's formula sum):
    sum of weight * score, a document missing from a list adding 0."""
    out: dict[str, float] = {}
    for per_list, weight in zip(scores, weights):
        for doc_id, score in per_list.items():
            out[doc_id] = out.get(doc_id, 0.0) + weight * score
    return out
