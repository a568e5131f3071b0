"""``m3vdb encode / load / export / copy`` through ``main(argv)``: the same entries as
``m3vdb index`` (ids and windows), a file plain pyarrow reads, loads and copies between a
Milvus Lite file and a Qdrant edge folder, and the one-line errors (a dimension mismatch
writes nothing; Elasticsearch cannot be exported from).

Troubleshooting: the library behind the verbs is tested in tests/formats/test_transfer.py;
a failure only here points at the argument wiring in m3vdb/cli/main.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from m3vdb.cli.main import main
from m3vdb.connectors import connect
from m3vdb.schemas.spec import IndexSpec

pytest.importorskip("milvus_lite", reason="milvus-lite is missing")
pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is missing")
pq = pytest.importorskip("pyarrow.parquet")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _ids(target: str, collection: str) -> list[str]:
    with connect(target, collection=collection, create=False) as store:
        return sorted(d.id for d in store.scan())


def test_encode_load_export_copy(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("BGE-M3 gives three vectors.", encoding="utf-8")
    (tmp_path / "notes" / "long.txt").write_text(
        " ".join(f"río valle {i}" for i in range(200)), encoding="utf-8"
    )
    model = ["--model", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32"]
    chunk = ["--chunk-tokens", "64"]
    status, out, err = run(
        capsys, "encode", "notes", "--out", "e.parquet", "--quiet", *model, *chunk
    )
    assert status == 0, err
    assert out.startswith("encoded 2 documents") and "split into windows" in out
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column_names[:3] == ["id", "text", "metadata"]
    # the same entries as m3vdb index
    assert run(capsys, "index", "notes", "--db", "idx.db", "--quiet", *model, *chunk)[0] == 0
    assert sorted(table.column("id").to_pylist()) == _ids("idx.db", "m3vdb")

    status, out, err = run(capsys, "load", "e.parquet", "--db", "m.db", "--quiet")
    assert status == 0 and out.startswith(f"loaded {table.num_rows} entries"), err
    status, out, err = run(capsys, "export", "--db", "m.db", "--out", "x", "--quiet")
    assert status == 0 and (tmp_path / "x" / "part-00000.parquet").is_file(), err
    edge = f"qdrant+edge:{tmp_path / 'edge'}"
    status, out, err = run(capsys, "copy", "--db", "m.db", "--to", edge, "--quiet")
    assert status == 0 and f"copied {table.num_rows} entries (0 already" in out, err
    status, out, err = run(capsys, "copy", "--db", "m.db", "--to", edge, "--quiet")
    assert status == 0 and f"copied 0 entries ({table.num_rows} already" in out, err
    assert _ids(edge, "m3vdb") == _ids("m.db", "m3vdb")
    assert run(capsys, "load", "x", "--db", edge, "--collection", "x", "--quiet")[0] == 0
    assert _ids(edge, "x") == _ids("m.db", "m3vdb")

    with connect("other.db", collection="m3vdb", spec=IndexSpec(dense_dim=8, colbert_dim=8)):
        pass
    status, out, err = run(capsys, "load", "e.parquet", "--db", "other.db", "--quiet")
    assert status == 2 and "dense dimension" in err and "Nothing was written" in err
    status, out, err = run(capsys, "load", "missing.parquet", "--db", "other.db")
    assert status == 2 and "no m3vdb embedding file" in err
