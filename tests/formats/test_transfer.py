"""``encode`` -> ``load``, ``export`` -> ``load`` and ``copy`` between every pair of embedded
engines (the contract suite's backend descriptions: Milvus Lite, Qdrant local, Qdrant edge),
round-tripping exactly: ids, text, metadata, dense, sparse, ColBERT, the windows of a long
document, and equal search results in every mode.

Troubleshooting: a mismatch in ColBERT rows only on Milvus points at the companion layout's
versions (``connectors/milvus/colbert.py``); only on Qdrant at ``_scroll(with_vectors=True)``.
"""

from __future__ import annotations

import itertools
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import backends  # noqa: E402

from m3vdb import Chunking, Document, connect  # noqa: E402
from m3vdb.encoder import M3Encoder  # noqa: E402
from m3vdb.errors import SchemaMismatchError  # noqa: E402
from m3vdb.formats import transfer  # noqa: E402
from m3vdb.formats.parquet import read_batches, read_info  # noqa: E402

pq = pytest.importorskip("pyarrow.parquet")

ENGINES = ("backend_milvus", "backend_qdrant", "backend_qdrant_edge")
PAIRS = [pytest.param(a, b, id=f"{a[8:]}->{b[8:]}") for a, b in itertools.permutations(ENGINES, 2)]
CHUNKING = Chunking(window=64, overlap=8, automatic=False)  # windows on short texts: fast
MODES = ("dense", "sparse", "colbert", "hybrid")


def _docs() -> list[Document]:
    long = " ".join(f"word{i} río valle número {i * 7}" for i in range(40))
    return [
        Document("a", "BGE-M3 gives dense, sparse and ColBERT vectors.", {"lang": "en", "n": 1}),
        Document("b", "Milvus, Qdrant and Elasticsearch store them.", {"tags": ["x", "y"]}),
        Document("c", "El río cruza el valle.", {"lang": "es", "score": 0.5}),
        Document("long", long, {"lang": "mixed"}),
    ]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: M3Encoder) -> Path:
    out = tmp_path_factory.mktemp("encoded") / "docs.parquet"
    report = transfer.encode(_docs(), out, encoder=tiny_encoder, chunking=CHUNKING, batch_size=2)
    assert report.split >= 1 and report.entries > 4  # the long document became windows
    return out


def _target(stack: ExitStack, module: str, tmp_path: Path) -> Any:
    backend = backends.load(module)
    folder = tmp_path / module
    folder.mkdir(exist_ok=True)
    return stack.enter_context(backends.started(backend, "embedded", folder))


def _entries(path: Path) -> dict[str, Any]:
    return {d.id: (d, e) for batch in read_batches(path, batch_size=3) for d, e in batch}


def _stored(target: Any, collection: str) -> dict[str, Any]:
    with connect(target, collection=collection, create=False) as store:
        return {d.id: (d, e) for b in store.scan_embeddings(batch_size=3) for d, e in b}


def assert_same_entries(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert sorted(got) == sorted(want)
    for i, (doc, emb) in want.items():
        gdoc, gemb = got[i]
        assert (gdoc.text, dict(gdoc.metadata)) == (doc.text, dict(doc.metadata)), i
        for name in ("dense", "colbert"):
            a, b = getattr(gemb, name), getattr(emb, name)
            assert (a is None) == (b is None), (i, name)
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{i} {name}")
        assert gemb.sparse == emb.sparse, i


def _searches(target: Any, collection: str, query: Any) -> dict[str, list[tuple[str, float]]]:
    with connect(target, collection=collection, create=False) as store:
        return {
            mode: [(h.id, round(h.score, 5)) for h in store.search(query, 10, mode=mode)]
            for mode in MODES
        }


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_encode_load_export_load_and_copy_round_trip_exactly(
    a: str, b: str, encoded: Path, tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    want = _entries(encoded)
    assert any("#" in i for i in want)  # windows of the long document
    with ExitStack() as stack:
        src, dst = _target(stack, a, tmp_path), _target(stack, b, tmp_path)
        loaded = transfer.load(encoded, src, "docs", batch_size=3)
        assert (loaded.read, loaded.written) == (len(want), len(want))
        assert_same_entries(_stored(src, "docs"), want)

        out = tmp_path / "export"  # a folder of part files
        exported = transfer.export(src, "docs", out, batch_size=3)
        assert exported.written == len(want)
        assert_same_entries(_entries(out), want)
        assert read_info(out).spec == read_info(encoded).spec

        transfer.load(out, dst, "from_export")
        transfer.load(encoded, dst, "direct")
        copied = transfer.copy(src, "docs", dst, "copied", batch_size=3)
        assert (copied.written, copied.skipped) == (len(want), 0)
        for name in ("from_export", "copied"):
            assert_same_entries(_stored(dst, name), want)

        query = tiny_encoder.encode(["el río y el valle"])[0]
        direct = _searches(dst, "direct", query)
        assert all(direct[m] for m in MODES)
        assert _searches(dst, "from_export", query) == direct
        assert _searches(dst, "copied", query) == direct


@pytest.mark.parametrize("module", ENGINES, ids=lambda m: m[8:])
def test_copy_resumes_float16_and_refuses_a_dimension_mismatch(
    module: str, encoded: Path, tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    with ExitStack() as stack:
        target = _target(stack, module, tmp_path)
        # a float16-ColBERT collection: built from a float16 dataset, round trip exact
        f16 = tmp_path / "f16.parquet"
        transfer.encode(
            _docs(), f16, encoder=tiny_encoder, chunking=CHUNKING, colbert_type="float16"
        )
        assert read_info(f16).colbert_type == "float16"
        transfer.load(f16, target, "f16")
        with connect(target, collection="f16", create=False) as store:
            assert store.spec.colbert_precision == "float16"
        want = _entries(f16)
        assert_same_entries(_stored(target, "f16"), want)
        exported = tmp_path / "f16-out.parquet"
        transfer.export(target, "f16", exported)
        assert pq.read_schema(exported).field("colbert").type.value_type.value_type == "halffloat"
        assert_same_entries(_entries(exported), want)

        # copy resumes: what is stored unchanged is not written again
        transfer.load(encoded, target, "docs")
        first = transfer.copy(target, "docs", target, "again", batch_size=2)
        with connect(target, collection="again", create=False) as store:
            victims = [d.id for d, _ in list(_entries(encoded).values())[:3]]
            store.delete(victims)
        second = transfer.copy(target, "docs", target, "again", batch_size=2)
        assert (second.written, second.skipped) == (3, first.written - 3)

        # a dimension mismatch: refused before anything is written
        from m3vdb.schemas.spec import IndexSpec

        with connect(target, collection="other", spec=IndexSpec(dense_dim=8, colbert_dim=8)):
            pass
        with pytest.raises(SchemaMismatchError, match="dense dimension"):
            transfer.load(encoded, target, "other")
        with connect(target, collection="other", create=False) as store:
            assert store.count() == 0


def test_encode_writes_the_documented_columns(encoded: Path) -> None:
    table = pq.read_table(encoded)
    assert table.column_names == [
        "id",
        "text",
        "metadata",
        "dense",
        "sparse_indices",
        "sparse_values",
        "colbert",
    ]
    assert str(table.schema.field("dense").type) == "list<element: float>"
    assert str(table.schema.field("sparse_indices").type) == "list<element: int32>"
    assert str(table.schema.field("colbert").type) == "list<element: list<element: float>>"
    import json

    meta = json.loads(table.schema.metadata[b"m3vdb"])
    assert meta["format_version"] == 1 and meta["dense_dim"] == 32
    rows = table.to_pylist()
    long = [r for r in rows if r["id"].startswith("long#")]
    assert len(long) > 1 and json.loads(long[0]["metadata"])["parent_id"] == "long"
