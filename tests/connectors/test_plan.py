"""The search skeleton (``m3vdb.connectors.plan``) and ``HybridOptions``: what every backend
accepts, checked without a database. If a test here fails, the change affects all backends at
once; the contract suite then shows it per database."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from m3vdb import HybridOptions, IndexSpec, InputError, M3Embedding
from m3vdb.connectors.plan import build_plan

DIM = 4
SPEC = IndexSpec(dense_dim=DIM, colbert_dim=DIM)


class RecordingEncoder:
    """Wraps the real tiny encoder's output shape at DIM and records which outputs a search
    asked for (the point of the test: a mode encodes only what it needs)."""

    dense_dim = DIM
    colbert_dim = DIM

    def __init__(self) -> None:
        self.calls: list[tuple[bool, bool, bool]] = []

    def encode(
        self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True, colbert: bool = True
    ) -> list[M3Embedding]:
        self.calls.append((dense, sparse, colbert))
        return [_query(dense=dense, sparse=sparse, colbert=colbert) for _ in texts]


def _query(*, dense: bool = True, sparse: bool = True, colbert: bool = True) -> M3Embedding:
    unit = np.full(DIM, 0.5, np.float32)
    return M3Embedding(
        dense=unit if dense else None,
        sparse={3: 0.5, 9: 0.0} if sparse else None,
        colbert=np.stack([unit, unit]) if colbert else None,
    )


def _plan(query: object = None, k: int = 5, **kw: object):  # type: ignore[no-untyped-def]
    args = {"mode": "hybrid", "filter": None, "hybrid": None, "spec": SPEC, "encoder": None}
    args.update(kw)
    return build_plan(
        _query() if query is None else query,  # type: ignore[arg-type]
        k,
        collection="c",
        **args,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("mode", "needs"),
    [
        ("dense", (True, False, False)),
        ("sparse", (False, True, False)),
        ("colbert", (False, False, True)),
        ("hybrid", (True, True, True)),
    ],
)
def test_a_mode_encodes_only_what_it_needs(mode: str, needs: tuple[bool, bool, bool]) -> None:
    encoder = RecordingEncoder()
    plan = _plan("what is BGE-M3?", mode=mode, encoder=encoder)
    assert encoder.calls == [needs]
    assert (plan.dense is not None, plan.sparse is not None, plan.colbert is not None) == needs
    assert plan.text == "what is BGE-M3?"


def test_hybrid_without_rerank_does_not_encode_colbert() -> None:
    encoder = RecordingEncoder()
    plan = _plan("q", encoder=encoder, hybrid=HybridOptions(rerank=False))
    assert encoder.calls == [(True, True, False)] and not plan.rerank


def test_zero_sparse_weights_are_dropped_and_an_empty_sparse_query_matches_nothing() -> None:
    plan = _plan(mode="sparse")
    assert plan.sparse == {3: 0.5} and not plan.matches_nothing
    empty = _plan(M3Embedding(sparse={1: 0.0}), mode="sparse")
    assert empty.matches_nothing
    subnormal = _plan(M3Embedding(sparse={1: 1e-40, 2: 0.25}), mode="sparse")
    assert subnormal.sparse == {2: 0.25}  # below float32's smallest normal: counts as 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"k": 0}, "k must be"),
        ({"k": True}, "k must be"),
        ({"mode": "bm25"}, "mode must be"),
        ({"spec": IndexSpec(dense_dim=DIM, colbert_dim=DIM, sparse=False)}, "hybrid"),
        (
            {"spec": IndexSpec(dense_dim=DIM, colbert_dim=DIM, colbert=False), "mode": "colbert"},
            "colbert",
        ),
        ({"hybrid": HybridOptions(candidates=3)}, "below k"),
        ({"k": 20, "max_k": 10}, "limit of 10"),
        ({"hybrid": HybridOptions(candidates=200), "max_k": 100}, "limit of 100"),
        ({"filter": {"year": {"near": 3}}}, "operators"),
    ],
)
def test_bad_searches_are_input_errors(kw: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        _plan(**kw)


@pytest.mark.parametrize(
    ("query", "match"),
    [
        (M3Embedding(dense=np.ones(DIM + 1, np.float32)), "dense vector of shape"),
        (M3Embedding(dense=np.full(DIM, np.nan, np.float32)), "NaN"),
        (M3Embedding(sparse={-1: 0.5}), "outside"),
        (M3Embedding(sparse={True: 0.5}), "not a token id"),  # type: ignore[dict-item]
        (M3Embedding(colbert=np.ones((2, 3), np.float32)), "ColBERT rows of shape"),
    ],
)
def test_bad_query_vectors_are_input_errors(query: M3Embedding, match: str) -> None:
    mode = (
        "dense" if query.dense is not None else "sparse" if query.sparse is not None else "colbert"
    )
    with pytest.raises(InputError, match=match):
        _plan(query, mode=mode)


def test_text_queries_need_an_encoder_and_text() -> None:
    with pytest.raises(InputError, match="needs an encoder"):
        _plan("q")
    with pytest.raises(InputError, match="empty"):
        _plan("   ", encoder=RecordingEncoder())
    with pytest.raises(TypeError):
        _plan(42)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"fusion": "dbsf"}, InputError),
        ({"rrf_k": 0}, InputError),
        ({"rrf_k": 16384}, InputError),
        ({"rrf_k": 1.5}, TypeError),
        ({"weights": (1.5, 0.5)}, InputError),
        ({"weights": (0.0, 0.0)}, InputError),
        ({"weights": (float("nan"), 0.5)}, InputError),
        ({"weights": (0.5,)}, TypeError),
        ({"candidates": 0}, InputError),
        ({"rerank": "yes"}, TypeError),
    ],
)
def test_hybrid_options_are_checked_once_in_the_constructor(
    kw: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        HybridOptions(**kw)  # type: ignore[arg-type]


def test_hybrid_options_accept_the_common_range() -> None:
    options = HybridOptions(fusion="weighted", rrf_k=1, weights=(1, 0), candidates=1)
    assert options.weights == (1.0, 0.0)
    assert HybridOptions().candidate_count(30) == 120


def test_colbert_plan_on_an_fde_collection_carries_the_query_fde() -> None:
    """mode='colbert' with IndexSpec.colbert_fde: the plan holds the query's FDE (the same
    encoder the documents were written with) and ColbertFde.candidates, unless HybridOptions
    names candidates; at least k, at most the database's max_k. Other modes carry none."""
    from m3vdb.schemas.muvera import fde_encoder
    from m3vdb.schemas.spec import ColbertFde

    config = ColbertFde(k_sim=2, d_proj=2, repetitions=3, candidates=40)
    spec = IndexSpec(dense_dim=DIM, colbert_dim=DIM, colbert_fde=config)
    plan = _plan(mode="colbert", spec=spec)
    assert plan.candidates == 40 and plan.fde is not None and plan.fde.shape == (24,)
    assert np.array_equal(plan.fde, fde_encoder(config, DIM).query(_query().colbert))
    assert _plan(mode="colbert", spec=spec, k=60).candidates == 60
    assert _plan(mode="colbert", spec=spec, hybrid=HybridOptions(candidates=7)).candidates == 7
    many = IndexSpec(dense_dim=DIM, colbert_dim=DIM, colbert_fde=ColbertFde(candidates=1000))
    assert _plan(mode="colbert", spec=many, max_k=60).candidates == 60
    assert _plan(mode="hybrid", spec=spec).fde is None
    assert _plan(mode="colbert").fde is None
