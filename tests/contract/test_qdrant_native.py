"""What only Qdrant has: the native layout it stores, the one-call query plan, the hard
multivector cap. Runs on Qdrant's embedded and container forms."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import backends
import numpy as np
import pytest
from conftest import BackendTarget, ContractBackend, corpus_spec
from contract_data import Corpus

from m3vdb.connectors import Document, HybridOptions, IndexSpec, M3Embedding
from m3vdb.errors import InputError


@pytest.fixture(scope="module", params=backends.params(("backend_qdrant",)))
def qdrant_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendTarget]:
    param: backends.BackendParam = request.param
    backend = backends.load(param.module)
    with backends.started(backend, param.form, tmp_path_factory.mktemp(param.id)) as target:
        yield BackendTarget(param.id, backend, target)


@pytest.fixture
def qdrant(qdrant_target: BackendTarget) -> Iterator[ContractBackend]:
    contract = ContractBackend(qdrant_target)
    try:
        yield contract
    finally:
        contract.close()


def test_native_collection_layout(qdrant: ContractBackend) -> None:
    from qdrant_client import models

    store = qdrant.open(corpus_spec(colbert_precision="float16"))
    info = store.client.get_collection(store.collection)  # type: ignore[attr-defined]
    vectors = info.config.params.vectors
    assert vectors["dense"].distance == models.Distance.DOT
    colbert = vectors["colbert"]
    assert colbert.multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
    assert colbert.hnsw_config.m == 0
    assert colbert.datatype == models.Datatype.FLOAT16
    assert set(info.config.params.sparse_vectors) == {"sparse"}


def test_points_have_uuid5_ids_and_keep_the_original_id(
    qdrant: ContractBackend, corpus: Corpus
) -> None:
    from m3vdb.schemas.qdrant import M3VDB_NAMESPACE

    store = qdrant.open()
    doc, emb = corpus.pairs()[0]
    store.upsert([(doc, emb)])
    (record,) = store.client.retrieve(  # type: ignore[attr-defined]
        store.collection, ids=[str(uuid.uuid5(M3VDB_NAMESPACE, doc.id))], with_vectors=True
    )
    assert record.payload["id"] == doc.id
    assert record.payload["metadata"] == dict(doc.metadata)
    np.testing.assert_allclose(record.vector["dense"], emb.dense, rtol=1e-6)
    stored_sparse = dict(
        zip(record.vector["sparse"].indices, record.vector["sparse"].values, strict=True)
    )
    assert stored_sparse == pytest.approx(emb.sparse)


def test_hybrid_with_rerank_is_one_query_points_call(
    qdrant: ContractBackend, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdrant_client import models

    store = qdrant.open()
    store.upsert(corpus.pairs()[:40])
    client = store.client  # type: ignore[attr-defined]
    calls = []
    real = client.query_points

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "query_points", spy)
    hits = store.search(
        corpus.queries[0], 5, filter={"lang": "en"}, hybrid=HybridOptions(candidates=12)
    )
    assert len(calls) == 1
    assert len(hits) == 5
    call = calls[0]
    assert call["using"] == "colbert"
    (fused,) = call["prefetch"]
    assert isinstance(fused.query, models.RrfQuery)
    assert fused.query.rrf.k == 61  # rrf_k=60 on 1-based ranks = Qdrant's k on 0-based ones
    assert fused.limit == 12
    assert [p.using for p in fused.prefetch] == ["dense", "sparse"]
    assert all(p.filter == call["query_filter"] is not None for p in fused.prefetch)
    assert all(p.limit == 12 for p in fused.prefetch)


def test_multivector_cap_is_enforced_before_any_write(qdrant: ContractBackend) -> None:
    """Qdrant refuses more than 1,048,576 floats per multivector: 1024 rows at 1024-d."""
    spec = IndexSpec(dense_dim=4, colbert_dim=1024, sparse=False, max_colbert_rows=4096)
    store = qdrant.open(spec)
    rng = np.random.default_rng(0)

    def pair(doc_id: str, rows: int) -> tuple[Document, M3Embedding]:
        colbert = np.ones((rows, 1024), np.float32) / 32.0
        dense = rng.normal(size=4).astype(np.float32)
        return Document(doc_id, "long text"), M3Embedding(
            dense=dense / np.linalg.norm(dense), colbert=colbert
        )

    with pytest.raises(InputError, match="encode_windows") as info:
        store.upsert([pair("ok", 3), pair("too-long", 1025)])
    assert "1,048,576" in str(info.value) and "too-long" in str(info.value)
    assert store.count() == 0
    # a smaller dimension allows more rows: the cap is on floats, not rows
    small = IndexSpec(dense_dim=4, colbert_dim=256, sparse=False, max_colbert_rows=4096)
    from m3vdb.schemas.qdrant import check_multivector_cap

    check_multivector_cap(small, "x", 4096)
    with pytest.raises(InputError):
        check_multivector_cap(small, "x", 4097)


def test_weighted_fusion_is_a_formula_over_prefetch_scores(
    qdrant: ContractBackend, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdrant_client import models

    store = qdrant.open()
    store.upsert(corpus.pairs()[:40])
    client = store.client  # type: ignore[attr-defined]
    calls = []
    real = client.query_points
    monkeypatch.setattr(client, "query_points", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    store.search(
        corpus.queries[1],
        5,
        hybrid=HybridOptions(fusion="weighted", weights=(0.25, 0.75), rerank=False),
    )
    (call,) = calls
    assert isinstance(call["query"], models.FormulaQuery)
    assert call["query"].defaults == {"$score[0]": 0.0, "$score[1]": 0.0}
