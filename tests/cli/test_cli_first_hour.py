"""Small things a new user meets in the first hour (issue 22's list, the part that landed):
``--version``, an empty query, a UTF-8 byte-order mark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m3vdb.cli.main import main

REPO = Path(__file__).resolve().parents[2]
WORDS = (REPO / "tests" / "data" / "multilingual.txt").read_text(encoding="utf-8").split()


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3VDB_MODEL", str(tiny_model_dir))
    return tmp_path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("m3vdb 0.")


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_an_empty_query_is_a_clear_error(
    workdir: Path, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    assert main(["search", query]) == 2
    assert "the query is empty" in capsys.readouterr().err


def test_a_byte_order_mark_is_not_part_of_the_text(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "a.txt").write_bytes("\ufeffBOM text about rivers".encode())
    (workdir / "b.jsonl").write_bytes(
        '\ufeff{"id": "j1", "text": "a JSONL line after a BOM"}\n'.encode()
    )
    assert main(["index", "a.txt", "b.jsonl", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "rivers", "--json", "--mode", "dense"]) == 0
    texts = {h["id"]: h["text"] for h in json.loads(capsys.readouterr().out)}
    assert texts["a.txt"] == "BOM text about rivers" and texts["j1"] == "a JSONL line after a BOM"
