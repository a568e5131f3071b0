"""The request bodies of Elasticsearch searches: knn, sparse_vector, BM25, the ColBERT
MaxSim script, the rescorer and the hybrid retriever tree. Pure functions over the
``SearchPlan``'s vectors; built with the typed classes of ``elasticsearch.dsl`` where it has
them (it has none for retrievers and rescorers, which are plain dicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from m3vdb.schemas.elasticsearch import colbert_query_params, dsl, sparse_source
from m3vdb.schemas.options import ElasticsearchOptions
from m3vdb.schemas.spec import IndexSpec

# MaxSim over rank_vectors; Elasticsearch refuses negative scores, so the script returns
# exp(maxsim / n_query_rows) (> 0, monotonic), inverted by schemas.elasticsearch.colbert_from_es.
COLBERT_SCRIPT = "Math.exp(maxSimDotProduct(params.query_vector, '{field}') / params.n)"
# The same over int8 / bit rows: scale and shift map the quantised MaxSim back to the float
# one's scale (schemas.elasticsearch.colbert_query_params).
COLBERT_SCRIPT_QUANTISED = (
    "Math.exp((maxSimDotProduct(params.query_vector, '{field}') * params.scale + params.shift)"
    " / params.n)"
)


def knn_query(
    spec: IndexSpec,
    vector: Sequence[float] | np.ndarray,
    k: int,
    options: ElasticsearchOptions,
    filters: list[dict[str, Any]],
    *,
    field: str | None = None,
) -> dict[str, Any]:
    """The ``knn`` query (top ``k``, filtered during the graph search, not after it) on the
    dense field, or on ``field``."""
    _, q, types = dsl()
    params: dict[str, Any] = {
        "field": field or spec.fields.dense,
        "query_vector": [float(x) for x in vector],
        "k": k,
        "num_candidates": options.num_candidates_for(k),
    }
    if filters:
        params["filter"] = filters
    if options.rescore_oversample is not None:
        params["rescore_vector"] = types.RescoreVector(oversample=options.rescore_oversample)
    out: dict[str, Any] = q.Knn(**params).to_dict()
    return out


def sparse_query(
    spec: IndexSpec,
    weights: Mapping[int, float],
    options: ElasticsearchOptions,
    filters: list[dict[str, Any]],
) -> dict[str, Any]:
    """``bool`` of the ``sparse_vector`` query (precomputed ``query_vector``, pruning off unless
    asked) and the filter: the score is the sum over shared tokens of q_w * stored p_w."""
    _, q, _ = dsl()
    sparse = q.SparseVector(
        field=spec.fields.sparse,
        query_vector=sparse_source(weights),
        prune=options.sparse_prune,
    )
    out: dict[str, Any] = (
        q.Bool(must=[sparse], filter=filters).to_dict()
        if filters
        else (q.Bool(must=[sparse]).to_dict())
    )
    return out


def bm25_query(spec: IndexSpec, text: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    _, q, _ = dsl()
    match = q.Match(**{spec.fields.text: text})
    out: dict[str, Any] = (
        q.Bool(must=[match], filter=filters) if filters else q.Bool(must=[match])
    ).to_dict()
    return out


def colbert_script(spec: IndexSpec, rows: np.ndarray) -> dict[str, Any]:
    _, _, types = dsl()
    params = colbert_query_params(spec, rows)
    script = COLBERT_SCRIPT_QUANTISED if "scale" in params else COLBERT_SCRIPT
    out: dict[str, Any] = types.Script(
        source=script.format(field=spec.fields.colbert), params=params
    ).to_dict()
    return out


def colbert_query(
    spec: IndexSpec, rows: np.ndarray, filters: list[dict[str, Any]]
) -> dict[str, Any]:
    """``script_score`` with MaxSim over every (filtered) document: rank_vectors has no index,
    so this is an exact scan."""
    _, q, _ = dsl()
    inner = q.Bool(filter=filters) if filters else q.MatchAll()
    out: dict[str, Any] = q.ScriptScore(query=inner, script=colbert_script(spec, rows)).to_dict()
    return out


def fde_search(
    spec: IndexSpec,
    fde: np.ndarray,
    rows: np.ndarray,
    candidates: int,
    options: ElasticsearchOptions,
    filters: list[dict[str, Any]],
) -> dict[str, Any]:
    """The body of ``mode="colbert"`` with a MUVERA first stage, ONE search: a ``knn`` query
    on the FDE field for ``candidates`` documents (filtered in the graph search), rescored by
    exact MaxSim over ``rank_vectors`` (the score is MaxSim's alone)."""
    knn = knn_query(spec, fde, candidates, options, filters, field=spec.fields.colbert_fde)
    knn["knn"].pop("rescore_vector", None)  # the dense field's option, not the FDE's
    return {"query": knn, "rescore": rescore(spec, rows, candidates)}


def rescore(spec: IndexSpec, rows: np.ndarray, window: int) -> dict[str, Any]:
    """A query rescorer whose final score IS the MaxSim script (original score weighted 0).
    No typed rescore class in elasticsearch.dsl: a plain dict."""
    _, q, _ = dsl()
    script_score = q.ScriptScore(query=q.MatchAll(), script=colbert_script(spec, rows))
    return {
        "window_size": window,
        "query": {
            "rescore_query": script_score.to_dict(),
            "query_weight": 0.0,
            "rescore_query_weight": 1.0,
            "score_mode": "total",
        },
    }


@dataclass(frozen=True)
class Signal:
    """One hybrid signal: its name, the query body of its candidate list, and its weight."""

    name: Literal["dense", "sparse", "bm25"]
    query: dict[str, Any]
    weight: float


def hybrid_retriever(
    signals: Sequence[Signal],
    *,
    fusion: Literal["rrf", "weighted"],
    rrf_k: int,
    candidates: int,
    rerank: dict[str, Any] | None,
) -> dict[str, Any]:
    """The retriever tree of ONE hybrid search: an ``rrf`` (or ``linear``, weights,
    ``normalizer: none``) retriever over a ``knn`` retriever and ``standard`` retrievers,
    optionally wrapped in a ``rescorer`` retriever (``rerank`` from :func:`rescore`).
    elasticsearch.dsl has no retriever classes: the tree is plain dicts, its queries typed."""
    children = []
    for s in signals:
        if s.name == "dense":
            knn = dict(s.query["knn"])
            knn.pop("boost", None)
            children.append({"knn": knn})
        else:
            children.append({"standard": {"query": s.query}})
    if fusion == "rrf":
        fused: dict[str, Any] = {
            "rrf": {"retrievers": children, "rank_window_size": candidates, "rank_constant": rrf_k}
        }
    else:
        fused = {
            "linear": {
                "retrievers": [
                    {"retriever": child, "weight": s.weight, "normalizer": "none"}
                    for child, s in zip(children, signals)
                ],
                "rank_window_size": candidates,
            }
        }
    if rerank is None:
        return fused
    return {"rescorer": {"retriever": fused, "rescore": rerank}}
