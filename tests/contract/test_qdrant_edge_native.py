"""What only the Qdrant edge connector has: the native layout in the shard's persisted config,
the one-query plan, shards shared inside a process and refused across processes, an
``EdgeShard`` passed in, and the target's place in the registry.

Troubleshooting: "open in another process" failing means edge's WAL lock message changed
(``connectors.qdrant.edge._LOCK_MARKERS``); the one-query tests spy on the shard through
``OPEN_SHARDS.current``, the one place the connector gets its shard from.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import corpus_spec
from contract_data import Corpus

from m3vdb.connectors import (
    Document,
    HybridOptions,
    IndexSpec,
    M3Embedding,
    QdrantEdgeOptions,
    QdrantOptions,
    connect,
    registry,
)
from m3vdb.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    MissingDependencyError,
    SchemaMismatchError,
)

qdrant_edge = pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed")

from m3vdb.connectors.qdrant import edge as edge_connector  # noqa: E402


def _target(tmp_path: Path) -> str:
    return f"qdrant+edge:{tmp_path}"


def _config(tmp_path: Path, collection: str) -> dict[str, Any]:
    return json.loads((tmp_path / collection / "edge_config.json").read_text())


def test_native_layout_in_the_shard_config(tmp_path: Path) -> None:
    """Named dense (Dot), named sparse (no modifier), multivector MAX_SIM Dot with HNSW m=0
    and float16: the layout of the qdrant-client connector."""
    with connect(_target(tmp_path), collection="c", spec=corpus_spec(colbert_precision="float16")):
        pass
    config = _config(tmp_path, "c")
    assert config["vectors"]["dense"] == {"size": 32, "distance": "Dot"}
    colbert = config["vectors"]["colbert"]
    assert colbert["multivector_config"] == {"comparator": "max_sim"}
    assert colbert["distance"] == "Dot" and colbert["datatype"] == "float16"
    assert colbert["hnsw_config"]["m"] == 0
    assert config["sparse_vectors"] == {"sparse": {}}
    # asked for: an HNSW graph on the multivector, and the dense vector's HNSW settings
    spec = corpus_spec(colbert_index=True, dense_metric="cosine")
    options = QdrantEdgeOptions(dense_hnsw_m=32, dense_hnsw_ef_construct=64)
    with connect(_target(tmp_path), collection="d", spec=spec, options=options):
        pass
    config = _config(tmp_path, "d")
    assert "hnsw_config" not in config["vectors"]["colbert"]
    assert config["vectors"]["dense"]["distance"] == "Cosine"
    assert config["vectors"]["dense"]["hnsw_config"]["m"] == 32
    assert config["vectors"]["dense"]["hnsw_config"]["ef_construct"] == 64


def test_points_have_uuid5_ids_payload_and_vectors(tmp_path: Path, corpus: Corpus) -> None:
    from m3vdb.schemas.qdrant import M3VDB_NAMESPACE

    store = connect(_target(tmp_path), collection="c", spec=corpus_spec())
    doc, emb = corpus.pairs()[0]
    store.upsert([(doc, emb)])
    point_id = str(uuid.uuid5(M3VDB_NAMESPACE, doc.id))
    (record,) = store.client.retrieve([point_id], with_payload=True, with_vector=True)
    assert str(record.id) == point_id
    assert record.payload == {"id": doc.id, "text": doc.text, "metadata": dict(doc.metadata)}
    np.testing.assert_allclose(record.vector["dense"], emb.dense, rtol=1e-6)
    sparse = record.vector["sparse"]
    assert dict(zip(sparse.indices, sparse.values, strict=True)) == pytest.approx(emb.sparse)
    np.testing.assert_allclose(record.vector["colbert"], emb.colbert, rtol=1e-6)
    store.drop()


class _Spy:
    """Records every ``query`` of the shard it wraps (pyo3 objects take no attributes)."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.queries: list[Any] = []

    def query(self, request: Any) -> Any:
        self.queries.append(request)
        return self.shard.query(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)


@pytest.fixture
def spied(tmp_path: Path, corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, _Spy]:
    store = connect(_target(tmp_path), collection="c", spec=corpus_spec())
    store.upsert(corpus.pairs()[:40])
    spy = _Spy(store.client)
    monkeypatch.setattr(edge_connector.OPEN_SHARDS, "current", lambda folder: spy)
    return store, spy


def test_hybrid_with_rerank_is_one_query(spied: tuple[Any, _Spy], corpus: Corpus) -> None:
    store, spy = spied
    hits = store.search(
        corpus.queries[0], 5, filter={"lang": "en"}, hybrid=HybridOptions(candidates=12)
    )
    assert len(spy.queries) == 1 and len(hits) == 5
    request = spy.queries[0]
    assert request.limit == 5 and request.filter is not None
    (fused,) = request.prefetches
    assert isinstance(fused.query, qdrant_edge.Fusion.Rrf)
    assert fused.query.k == 61  # rrf_k=60 on 1-based ranks = edge's k on 0-based ones
    assert fused.limit == 12 and fused.filter is not None
    assert [p.limit for p in fused.prefetches] == [12, 12]
    assert all(p.filter is not None for p in fused.prefetches)
    assert all(h.metadata["lang"] == "en" for h in hits)


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert"])
def test_every_single_signal_mode_is_one_query(
    spied: tuple[Any, _Spy], corpus: Corpus, mode: str
) -> None:
    store, spy = spied
    assert len(store.search(corpus.queries[1], 4, mode=mode)) == 4
    assert len(spy.queries) == 1 and not spy.queries[0].prefetches


def test_weighted_fusion_without_rerank_is_one_query(
    spied: tuple[Any, _Spy], corpus: Corpus
) -> None:
    store, spy = spied
    options = HybridOptions(fusion="weighted", weights=(0.25, 0.75), rerank=False)
    store.search(corpus.queries[1], 5, hybrid=options)
    (request,) = spy.queries
    assert isinstance(request.query, qdrant_edge.Formula)
    assert len(request.prefetches) == 2


def test_multivector_cap_is_enforced_before_any_write(tmp_path: Path) -> None:
    spec = IndexSpec(dense_dim=4, colbert_dim=1024, sparse=False, max_colbert_rows=4096)
    store = connect(_target(tmp_path), collection="c", spec=spec)
    dense = np.array([1, 0, 0, 0], np.float32)
    ok = M3Embedding(dense=dense, colbert=np.ones((3, 1024), np.float32) / 32)
    long = M3Embedding(dense=dense, colbert=np.ones((1025, 1024), np.float32) / 32)
    with pytest.raises(InputError, match="1,048,576"):
        store.upsert([(Document("ok", "t"), ok), (Document("too-long", "t"), long)])
    assert store.count() == 0


def test_connectors_on_one_folder_share_the_shard(tmp_path: Path, corpus: Corpus) -> None:
    """Edge refuses a second ``EdgeShard.load`` of an open folder; m3vdb shares the shard."""
    first = connect(_target(tmp_path), collection="c", spec=corpus_spec())
    second = connect(_target(tmp_path), collection="c", spec=corpus_spec())
    first.upsert(corpus.pairs()[:5])
    assert second.count() == 5
    first.close()
    assert second.count() == 5  # still open for the other connector
    second.close()
    with connect(_target(tmp_path), collection="c", spec=corpus_spec(), create=False) as again:
        assert again.count() == 5  # closed, persisted, reopened


def test_a_folder_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    with connect(_target(tmp_path), collection="c", spec=corpus_spec()):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, qdrant_edge
                shard = qdrant_edge.EdgeShard.load({str(tmp_path / "c")!r})
                print("open", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(BackendError, match="another process") as info:
            connect(_target(tmp_path), collection="c", spec=corpus_spec())
        assert str(tmp_path / "c") in str(info.value)
    finally:
        holder.communicate("")
    # released: opens again
    with connect(_target(tmp_path), collection="c", spec=corpus_spec()) as store:
        assert store.count() == 0


def test_create_false_creates_no_folder(tmp_path: Path) -> None:
    root = tmp_path / "nothing-here"
    with pytest.raises(CollectionNotFoundError):
        connect(f"qdrant+edge:{root}", collection="c", spec=corpus_spec(), create=False)
    assert not root.exists()


def test_an_edge_shard_passed_in(tmp_path: Path, corpus: Corpus) -> None:
    """The shard is the collection: close leaves it open, drop deletes its points, options
    are refused, and a shard of another layout is a SchemaMismatchError."""
    with connect(_target(tmp_path), collection="c", spec=corpus_spec()):
        pass  # creates the shard with m3vdb's layout
    shard = qdrant_edge.EdgeShard.load(str(tmp_path / "c"))
    try:
        with pytest.raises(InputError, match="leave options out"):
            connect(shard, collection="c", spec=corpus_spec(), options=QdrantEdgeOptions(1))
        with pytest.raises(TypeError):
            connect(shard, collection="c", spec=corpus_spec(), options=QdrantOptions())
        with pytest.raises(SchemaMismatchError, match="dense"):
            connect(shard, collection="c", spec=corpus_spec(dense_dim=33))
        store = connect(shard, collection="c", spec=corpus_spec())
        store.upsert(corpus.pairs()[:7])
        hits = store.search(corpus.queries[0], 3, mode="dense")
        assert len(hits) == 3
        store.close()
        assert shard.count(qdrant_edge.CountRequest()) == 7  # still open
        store.drop()
        assert shard.count(qdrant_edge.CountRequest()) == 0
    finally:
        shard.close()


def test_registry_picks_edge_for_its_url_and_its_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry.database_for("qdrant+edge:/x").name == "Qdrant edge"
    assert (
        registry.database_for("qdrant+edge:///x").engine
        == "m3vdb.connectors.qdrant.edge:QdrantEdgeEngine"
    )
    config = edge_connector.edge_config(IndexSpec(dense_dim=4, colbert_dim=4), QdrantEdgeOptions())
    shard = qdrant_edge.EdgeShard.create(str(tmp_path / "s"), config)
    try:
        assert registry.database_for(shard).name == "Qdrant edge"
    finally:
        shard.close()
    assert "qdrant+edge:PATH" in registry.URL_FORMS
    with pytest.raises(TypeError, match="QdrantEdgeOptions"):
        connect("qdrant+edge:/x", collection="c", options=QdrantOptions())
    with pytest.raises(InputError, match="path separators"):
        connect(_target(tmp_path), collection="../escape", spec=corpus_spec())
    with pytest.raises(InputError, match="no folder"):
        connect("qdrant+edge:", collection="c", spec=corpus_spec())
    monkeypatch.setitem(sys.modules, "qdrant_edge", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'm3vdb\[qdrant-edge\]'"):
        connect("qdrant+edge:/x", collection="c")


def test_optimize_builds_indexes_and_search_still_answers(tmp_path: Path, corpus: Corpus) -> None:
    store = connect(_target(tmp_path), collection="c", spec=corpus_spec())
    store.upsert(corpus.pairs()[:60])
    before = [h.id for h in store.search(corpus.queries[2], 5, mode="dense")]
    store.optimize()  # type: ignore[attr-defined]
    assert [h.id for h in store.search(corpus.queries[2], 5, mode="dense")] == before
    assert store.count() == 60
