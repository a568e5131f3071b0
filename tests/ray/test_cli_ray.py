"""``m3vdb encode --ray`` and ``m3vdb index --ray`` on a local Ray (2 CPUs, 2 actors) give
what the single-process commands give: the same file (ids, rows, vectors within float
tolerance, metadata), the same collection (search results in every mode), and a rerun
resumes (nothing re-encoded, nothing sent to Ray). Without ray installed, ``--ray`` is one
line naming ``pip install 'm3vdb[ray]'``.

Troubleshooting: the library parity is tested in test_encode.py; a failure only here points
at m3vdb/ray/run.py (the driver: resume, blocks, writes) or the argument wiring in
m3vdb/cli/main.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from m3vdb.cli.main import main
from m3vdb.connectors import connect

pytest.importorskip("ray")
pytest.importorskip("milvus_lite", reason="milvus-lite is missing")
pq = pytest.importorskip("pyarrow.parquet")

from m3vdb.formats.parquet import read_batches, read_info  # noqa: E402


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with short and long documents, a blank one and a JSONL file."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("BGE-M3 gives three vectors.", encoding="utf-8")
    (folder / "blank.txt").write_text("  \n", encoding="utf-8")
    (folder / "long.txt").write_text(
        " ".join(f"río valle {i}" for i in range(200)), encoding="utf-8"
    )
    lines = [
        {"id": f"j{i}", "text": f"note {i} about the flood in valley {i % 3}", "metadata": {"n": i}}
        for i in range(9)
    ]
    (folder / "more.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8"
    )
    return folder


def _model(tiny_model_dir: Path) -> list[str]:
    return ["--model", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32"]


RAY = ["--ray", "--ray-actors", "2", "--batch-size", "3"]
CHUNK = ["--chunk-tokens", "64"]


def test_encode_ray_equals_encode(
    local_ray, notes: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tiny_model_dir)
    status, single, err = run(
        capsys, "encode", "notes", "--out", "one.parquet", "--quiet", *model, *CHUNK
    )
    assert status == 0, err
    status, on_ray, err = run(capsys, "encode", "notes", "--out", "parts", *RAY, *model, *CHUNK)
    assert status == 0, err
    # the same summary: documents, entries, windows, skipped (the blank file)
    assert on_ray.split(" into ")[0] == single.split(" into ")[0]
    assert "1 skipped" in on_ray and "split into windows" in on_ray
    # the same metadata and schema; plain pyarrow reads the folder
    assert read_info("parts") == read_info("one.parquet")
    assert pq.read_table("parts").schema == pq.read_table("one.parquet").schema
    want = {d.id: (d, e) for b in read_batches("one.parquet") for d, e in b}
    got = {d.id: (d, e) for b in read_batches("parts") for d, e in b}
    assert sorted(got) == sorted(want) and any("#" in i for i in got)
    for key, (doc, emb) in want.items():
        gdoc, gemb = got[key]
        assert (gdoc.text, gdoc.metadata) == (doc.text, doc.metadata)
        np.testing.assert_allclose(gemb.dense, emb.dense, atol=1e-5)
        assert gemb.sparse.keys() == emb.sparse.keys()
        np.testing.assert_allclose(
            [gemb.sparse[k] for k in emb.sparse], list(emb.sparse.values()), atol=1e-5
        )
        np.testing.assert_allclose(gemb.colbert, emb.colbert, atol=1e-5)


def _stored(db: str) -> list[tuple[str, str, str]]:
    with connect(db, collection="m3vdb", create=False) as store:
        return sorted((d.id, d.text, json.dumps(d.metadata, sort_keys=True)) for d in store.scan())


def _results(db: str) -> dict[tuple[str, str], list[tuple[str, float]]]:
    out = {}
    with connect(db, collection="m3vdb", create=False) as store:
        vectors = {d.id: e for b in store.scan_embeddings(batch_size=64) for d, e in b}
        for mode in ("dense", "sparse", "colbert", "hybrid"):
            for query in ("flood in the valley", "río valle 7", "three vectors"):
                hits = store.search(query_embedding(vectors, query), k=5, mode=mode)
                out[(mode, query)] = [(h.id, round(h.score, 4)) for h in hits]
    return out


def query_embedding(vectors: dict, query: str):  # noqa: ANN201
    # a stored entry's embedding as the query: no encoder needed to compare two collections
    key = sorted(vectors)[hash(query) % len(vectors)]
    return vectors[key]


def test_index_ray_equals_index_and_resumes(
    local_ray, notes: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tiny_model_dir)
    status, single, err = run(capsys, "index", "notes", "--db", "one.db", "--quiet", *model, *CHUNK)
    assert status == 0, err
    status, on_ray, err = run(capsys, "index", "notes", "--db", "ray.db", *RAY, *model, *CHUNK)
    assert status == 0, err
    # the same report: documents, windows, entries, tokens, the blank file
    assert on_ray.split(" in ")[0] == single.split(" in ")[0]
    assert "1 empty, skipped" in on_ray
    assert _stored("ray.db") == _stored("one.db")
    assert _results("ray.db") == _results("one.db")

    # a rerun sends nothing to Ray: every document is stored unchanged
    status, again, err = run(capsys, "index", "notes", "--db", "ray.db", *RAY, *model, *CHUNK)
    assert status == 0, err
    assert again.startswith("indexed 0 of 12 documents") and "11 unchanged" in again
    # an edited long document is replaced as a whole (fewer windows now)
    (notes / "long.txt").write_text(" ".join(f"río {i}" for i in range(80)), encoding="utf-8")
    status, edited, err = run(capsys, "index", "notes", "--db", "ray.db", *RAY, *model, *CHUNK)
    assert status == 0 and "indexed 1 of 12" in edited and "1 replaced" in edited, err
    run(capsys, "index", "notes", "--db", "one.db", "--quiet", *model, *CHUNK)
    assert _results("ray.db") == _results("one.db")


def test_ray_missing_is_one_line(
    notes: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    status, out, err = run(
        capsys, "encode", "notes", "--out", "x", "--ray", *_model(tiny_model_dir)
    )
    assert status != 0 and not out
    assert err.count("\n") == 1 and "pip install 'm3vdb[ray]'" in err
    assert not Path("x").exists()


def test_an_error_in_an_actor_is_the_same_one_line(
    local_ray, notes: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-chunk refuses the long document inside an actor: the same message as without Ray
    (not Ray's traceback), and no output left behind."""
    model = _model(tiny_model_dir)
    single = run(capsys, "encode", "notes", "--out", "one", "--no-chunk", "--quiet", *model)
    on_ray = run(capsys, "encode", "notes", "--out", "two", "--no-chunk", *RAY, *model)
    assert single[0] == on_ray[0] == 2, (single, on_ray)
    assert on_ray[2].count("\n") == 1 and "long.txt" in on_ray[2]
    assert on_ray[2] == single[2]
    assert not Path("one").exists() and not Path("two").exists()
