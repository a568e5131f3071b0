"""What the CLI prints from data cannot drive the terminal (issue 26, item 4): stored texts,
ids and file names holding ESC, BEL, backspace, CR, C1 controls or bidi overrides are printed
with those characters made visible (``\\x1b``), in tables, plain lines and error lines;
``--json`` stays exact. A file name that is not UTF-8 is a one-line InputError.

Troubleshooting: a raw ``\\x1b`` in ``out`` means a print path skipped
``m3vdb.cli.render.visible``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from m3vdb.cli.main import main
from m3vdb.cli.render import visible

pytest.importorskip("milvus_lite", reason="milvus-lite (the default embedded engine) is missing")

HOSTILE = "red \x1b[31m bell \x07 back\x08 cr\r csi\x9b2J rtl\u202e end"
# Milvus refuses C0 controls in ids (no filter reaches them); a bidi override and a C1 CSI pass.
ID = "id\u202eevil\x9b"
RAW = ("\x1b", "\x07", "\x08", "\r", "\x9b", "\u202e")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3VDB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def test_visible_escapes_controls_and_keeps_text() -> None:
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("x\x9by\u202ez\x7f") == "x\\x9by\\u202ez\\x7f"
    assert visible("tab\tnl\n") == "tab\\x09nl\\x0a"
    assert visible("名前 ключ 🙂 é") == "名前 ключ 🙂 é"
    assert visible(os.fsdecode(b"caf\xe9.md")) == "caf\\xe9.md"  # the byte, not \udce9
    assert visible("\ud800") == "\\ud800"


def test_search_table_and_summary_make_stored_controls_visible(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "docs.jsonl").write_text(
        json.dumps({"id": ID, "text": HOSTILE}) + "\n", encoding="utf-8"
    )
    status, out, err = run(capsys, "index", "docs.jsonl", "--quiet")
    assert status == 0, err
    status, out, err = run(capsys, "search", "red bell", "-k", "3")
    assert status == 0, err
    assert not any(c in out for c in RAW), repr(out)
    assert "\\x1b[31m" in out and "id\\u202eevil\\x9b" in out
    status, out, err = run(capsys, "search", "red bell", "-k", "3", "--json")
    (hit,) = json.loads(out)
    assert hit["text"] == HOSTILE and hit["id"] == ID, "--json must be exact"


def test_error_lines_make_controls_visible(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "evil\x1b[2J.csv"
    (workdir / name).write_text("x", encoding="utf-8")
    status, out, err = run(capsys, "index", name, "--quiet")
    assert status == 2
    assert err.count("\n") == 1 and "\x1b" not in err and "evil\\x1b[2J.csv" in err, repr(err)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_a_non_utf8_file_name_is_a_one_line_input_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workdir / "notes"
    folder.mkdir()
    (folder / "good.txt").write_text("fine text", encoding="utf-8")
    try:
        with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "w") as f:
            f.write("text in a file whose name is Latin-1")
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    status, out, err = run(capsys, "index", "notes", "--quiet")
    assert status == 2, err
    assert "unexpected" not in err and err.count("\n") == 1, repr(err)
    assert "caf\\xe9.txt" in err and "not valid UTF-8" in err, repr(err)
