"""Issue 22 through the console script, on the folder a new user has: a 10k-token document, a
non-UTF-8 file, a binary file, a PDF, an HTML page, a DOCX, a symbolic link, a byte-order
mark, a JSONL with a bad metadata value on line 7, and a folder to exclude.

Each ``m3vdb`` run is a subprocess of the installed console script (what a user types), so
the model loads in every run that encodes: the runs are few and each checks several things.
The PDF is written by hand (one text object per page, offsets computed): no PDF writer is
needed offline. The DOCX is written with python-docx (the ``documents`` extra).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from m3vdb.connectors import connect

REPO = Path(__file__).resolve().parents[2]
WORDS = (REPO / "tests" / "data" / "multilingual.txt").read_text(encoding="utf-8").split()
DB = "qdrant+edge:./store"


def _script() -> str:
    script = Path(sys.executable).with_name("m3vdb")
    if not script.exists():
        pytest.skip("the m3vdb console script is not installed (pip install -e .)")
    return str(script)


def m3vdb(cwd: Path, *argv: str, model: Path | str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "M3VDB_MODEL": str(model), "M3VDB_ENCODER_URL": ""}
    return subprocess.run(
        [_script(), *argv], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


def minimal_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page (ASCII, no parentheses)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("ascii")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode("ascii")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode("ascii")
    return out


def _text(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    docx = pytest.importorskip("docx")
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "drafts").mkdir()
    (root / "long.md").write_text(_text(10_000, 1), "utf-8")  # ~10k tokens: windows
    (root / "bom.txt").write_bytes("\ufeffBOM text about rivers".encode())
    (root / "sub" / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (root / "sub" / "blob.txt").write_bytes(bytes(range(256)) * 4)  # binary
    (root / "sub" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # no reader: named
    (root / "drafts" / "wip.md").write_text("not ready", "utf-8")
    (root / "report.pdf").write_bytes(minimal_pdf(["Flood report page one", "Page two dams"]))
    (root / "page.html").write_text(
        "<html><head><title>Rivers</title><script>var x = 1;</script></head><body>"
        "<h1>Rhine</h1><p>The Rhine flows north.</p><h2>Danube</h2><p>The Danube flows "
        "east.</p></body></html>",
        "utf-8",
    )
    document = docx.Document()
    document.add_heading("Lakes", level=1)
    document.add_paragraph("Lake Geneva is deep.")
    document.add_heading("Seas", level=1)
    document.add_paragraph("The Baltic is brackish.")
    document.save(str(root / "memo.docx"))
    (root / "link.md").symlink_to(root / "bom.txt")  # read once, as bom.txt
    (root / "sub" / "again.txt").symlink_to(root / "bom.txt")
    lines = [
        f'{{"id": "j{i}", "text": "line {i}", "metadata": {{"n": {i}}}}}' for i in range(1, 10)
    ]
    lines[6] = '{"id": "j7", "text": "line 7", "metadata": {"n": null}}'
    (tmp_path / "export.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    return root


def _stored(cwd: Path) -> dict[str, dict[str, object]]:
    with connect(DB.replace("./", f"{cwd}/"), collection="m3vdb", create=False) as store:
        return {e.id: {"text": e.text, **e.metadata} for e in store.scan()}


def test_a_failed_model_load_creates_nothing(corpus: Path) -> None:
    """Issue 22 item 1: a wrong --model fails before any collection, file or folder exists,
    so the next command with the right model starts clean."""
    cwd = corpus.parent
    done = m3vdb(cwd, "index", "notes/bom.txt", "--db", DB, model=cwd / "no-such-model")
    assert done.returncode != 0
    assert "no-such-model" in done.stderr
    assert not (cwd / "store").exists()
    done = m3vdb(cwd, "index", "notes/bom.txt", "--db", "m3vdb.db", model=cwd / "no-such-model")
    assert done.returncode != 0 and not (cwd / "m3vdb.db").exists()


def test_bad_metadata_on_line_7_is_refused_before_anything_is_written(
    corpus: Path, tiny_model_dir: Path
) -> None:
    """Items 4 and 5: the whole input is checked up front, every bad file named in one error
    (file:line for JSONL), and no database exists afterwards (strict by default)."""
    cwd = corpus.parent
    done = m3vdb(cwd, "index", "notes", "export.jsonl", "--db", DB, model=tiny_model_dir)
    assert done.returncode == 2, done.stderr
    # every bad file in one error, not one per run
    assert "3 files cannot be indexed" in done.stderr, done.stderr
    assert "blob.txt: not UTF-8 text" in done.stderr
    assert "latin1.txt: not UTF-8 text" in done.stderr
    assert "export.jsonl:7: " in done.stderr and "'n'" in done.stderr
    assert not (cwd / "store").exists()


def test_a_mixed_folder_with_skip_errors_and_exclude(corpus: Path, tiny_model_dir: Path) -> None:
    """Items 2, 4, 7 and 9 (BOM, info's documents): --skip-errors names each unreadable file
    once on stderr and in the summary; --exclude leaves drafts/ out; links are read once;
    PDF pages and HTML / DOCX sections are documents with page / section metadata; ids
    start at the folder given, so the same folder indexed from inside it resumes everything.

    Troubleshooting: a PDF / HTML / DOCX missing from the ids: pip install -e '.[test]'
    (the documents extra)."""
    cwd = corpus.parent
    argv = ["index", "notes", "export.jsonl", "--db", DB, "--quiet"]
    done = m3vdb(cwd, *argv, "--skip-errors", "--exclude", "drafts/", model=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    # the long document is split into windows: no third-party warning about its length
    assert "Token indices sequence length" not in done.stderr
    skipped_lines = [line for line in done.stderr.splitlines() if line.startswith("m3vdb: skip")]
    assert len(skipped_lines) == 3, done.stderr  # latin1.txt, blob.txt, export.jsonl
    assert any("export.jsonl:7" in line for line in skipped_lines)
    summary = done.stdout
    assert "3 files skipped for errors" in summary, summary
    for name in ("latin1.txt", "blob.txt", "export.jsonl", "image.png", "drafts/", "link.md"):
        assert name in summary, (name, summary)
    stored = _stored(cwd)
    parents = {str(meta["parent_id"]) for meta in stored.values()}
    assert parents == {
        "notes/bom.txt",
        "notes/long.md",
        "notes/report.pdf#page=1",
        "notes/report.pdf#page=2",
        "notes/page.html#section=1",
        "notes/page.html#section=2",
        "notes/memo.docx#section=1",
        "notes/memo.docx#section=2",
    }, sorted(parents)
    assert stored["notes/bom.txt"]["text"] == "BOM text about rivers"
    assert stored["notes/long.md#0"]["chunks"] > 1  # type: ignore[operator]
    assert stored["notes/report.pdf#page=2"]["page"] == 2
    assert "Page two dams" in str(stored["notes/report.pdf#page=2"]["text"])
    html = stored["notes/page.html#section=2"]
    assert html["section"] == "Danube" and html["title"] == "Rivers"
    assert "var x" not in str(stored["notes/page.html#section=1"]["text"])
    assert stored["notes/memo.docx#section=2"]["section"] == "Seas"
    assert "brackish" in str(stored["notes/memo.docx#section=2"]["text"])

    # item 2 and 9: info loads no model (this one does not exist) and counts documents
    info = m3vdb(cwd, "info", "--db", DB, "--json", model="/nonexistent/model")
    assert info.returncode == 0, info.stderr
    counts = json.loads(info.stdout)
    assert (counts["documents"], counts["entries"]) == (8, len(stored))

    # the same folder from inside it: the same ids, nothing encoded again
    again = m3vdb(
        corpus,
        "index",
        ".",
        "--db",
        f"qdrant+edge:{cwd}/store",
        "--quiet",
        "--skip-errors",
        "--exclude",
        "drafts/",
        model=tiny_model_dir,
    )
    assert again.returncode == 0, again.stderr
    assert "indexed 0 of 8 documents" in again.stdout and "8 unchanged" in again.stdout


def test_without_the_documents_extra_one_line_names_it(corpus: Path, tiny_model_dir: Path) -> None:
    """Without pypdf / bs4 / python-docx, a PDF given by name fails with one line naming the
    extra, and in a folder each such file is named in the summary (here the converters are
    hidden from the import system, as if not installed)."""
    cwd = corpus.parent
    hide = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pypdf', 'bs4', 'docx'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from m3vdb.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "M3VDB_MODEL": str(tiny_model_dir)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", hide, *argv], cwd=cwd, capture_output=True, text=True, env=env
        )

    done = run("index", "notes/report.pdf", "--db", DB)
    assert done.returncode == 2
    assert "pip install 'm3vdb[documents]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = run("index", "notes/bom.txt", "notes/report.pdf", "--db", DB, "--skip-errors", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "report.pdf" in done.stdout and "m3vdb[documents]" in done.stdout


def test_ids_start_at_the_path_given(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/cli.md's id rule: a folder's files are NAME/PATH from any working directory; a
    file given by itself keeps its relative path (as earlier versions did), else its name."""
    from m3vdb.indexing.sources import discover

    def ids(*paths: str | Path) -> list[str]:
        return [s.file_id for s in discover(list(map(Path, paths)), exclude=["*/"]).sources]

    monkeypatch.chdir(corpus.parent)
    assert ids("notes/bom.txt", "./notes/long.md") == ["notes/bom.txt", "notes/long.md"]
    assert ids(corpus / "bom.txt") == ["bom.txt"]
    folder = sorted(ids("notes"))
    monkeypatch.chdir(corpus / "sub")
    assert sorted(ids("..")) == folder == sorted(ids(corpus))
    assert ids("../bom.txt") == ["bom.txt"]


def test_encode_shares_exclude_and_skip_errors(
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``m3vdb encode`` reads its sources as ``index`` does (in-process: the same main())."""
    from m3vdb.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3VDB_MODEL", str(tiny_model_dir))
    (tmp_path / "notes" / "drafts").mkdir(parents=True)
    (tmp_path / "notes" / "a.md").write_text("rivers and floods", "utf-8")
    (tmp_path / "notes" / "bad.txt").write_bytes(b"\xff\xfe\x00binary")
    (tmp_path / "notes" / "drafts" / "b.md").write_text("not ready", "utf-8")
    argv = ["encode", "notes", "--out", "out.parquet", "--quiet", "--exclude", "drafts/"]
    assert main(argv) == 2
    assert "bad.txt: not UTF-8" in capsys.readouterr().err
    assert main([*argv, "--skip-errors"]) == 0
    out, err = capsys.readouterr()
    assert "encoded 1 documents" in out and "notes/bad.txt" in out and "notes/drafts/" in out
    assert err.count("m3vdb: skipped") == 1
