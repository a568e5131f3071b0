"""``m3vdb.drop``: deletes a collection without opening it as a connector (one built for another
model), with what m3vdb created for it, and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m3vdb import Document, IndexSpec, M3Embedding, connect, drop

pytest.importorskip("milvus_lite")


def _pair(doc_id: str, dim: int) -> tuple[Document, M3Embedding]:
    unit = np.full(dim, 1 / np.sqrt(dim), np.float32)
    emb = M3Embedding(dense=unit, sparse={5: 0.5}, colbert=np.stack([unit, unit]))
    return Document(doc_id, "some text", {}), emb


def test_drop_removes_a_collection_of_another_model_and_its_companion_only(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    with connect(db, collection="docs", spec=IndexSpec(dense_dim=8, colbert_dim=8)) as store:
        store.upsert([_pair("a", 8)])
    plain = IndexSpec(dense_dim=4, colbert_dim=4, colbert=False)
    with connect(db, collection="users", spec=plain) as store:
        store.upsert([_pair("u", 4)])
    with connect(db, collection="users__colbert", spec=plain) as foreign:  # not a companion
        foreign.upsert([_pair("x", 4)])
        client = foreign.client  # type: ignore[attr-defined]
        assert drop(client, collection="docs") is True  # 8-d: no 4-d spec could open it
        assert not client.has_collection("docs") and not client.has_collection("docs__colbert")
        assert drop(client, collection="users") is True
        assert client.has_collection("users__colbert"), "a collection m3vdb did not create"
        assert drop(client, collection="docs") is False


def test_drop_creates_nothing_where_there_is_nothing(tmp_path: Path) -> None:
    assert drop(str(tmp_path / "none.db"), collection="c") is False
    assert drop(f"qdrant+local:{tmp_path / 'none'}", collection="c") is False
    assert not list(tmp_path.iterdir())


def test_drop_on_qdrant_local(tmp_path: Path) -> None:
    target = f"qdrant+local:{tmp_path / 'q'}"
    with connect(target, collection="c", spec=IndexSpec(dense_dim=8, colbert_dim=8)) as store:
        store.upsert([_pair("a", 8)])
    assert drop(target, collection="c") is True
    assert drop(target, collection="c") is False
