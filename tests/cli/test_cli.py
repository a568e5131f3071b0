"""The ``m3vdb`` command line on the embedded engines with the tiny checkpoint: the README's
main job and the issue's "done when" scenario (long documents, two roots, an edit, a removal,
Ctrl-C) through the console script, then each command and error through ``main(argv)``.

Troubleshooting: the console-script tests need ``pip install -e .`` (they skip otherwise);
every test writes into its own temporary directory (the default ``./m3vdb.qdrant`` lands
there)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from m3vdb.cli.defaults import DEFAULT_DB
from m3vdb.cli.main import main
from m3vdb.cli.render import cell_width, cut, hits_table, rows
from m3vdb.connectors import connect
from m3vdb.encoder import M3Encoder
from m3vdb.schemas.data import Document, Hit
from m3vdb.schemas.spec import ColbertFde, IndexSpec

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py (the default embedded engine) is missing")
pytest.importorskip("milvus_lite", reason="milvus-lite (the other embedded engine) is missing")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "crosslingual.jsonl"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    """A fresh working directory (the embedded default ./m3vdb.qdrant lands here) with the tiny
    model as the default --model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3VDB_MODEL", str(tiny_model_dir))
    return tmp_path


def _script() -> str:
    script = Path(sys.executable).with_name("m3vdb")
    if not script.exists():
        pytest.skip("the m3vdb console script is not installed (pip install -e .)")
    return str(script)


SPEC = IndexSpec(dense_dim=32, colbert_dim=32)  # the tiny checkpoint's dimensions
WORDS = (REPO / "tests" / "data" / "multilingual.txt").read_text(encoding="utf-8").split()


def _long_text(n_words: int, seed: int = 0) -> str:
    import random

    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _console(cwd: Path, model: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *argv, "--model", str(model), "--quiet"]
        if argv[0] == "index"
        else [_script(), *argv, "--model", str(model)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "M3VDB_MODEL": "", "COLUMNS": "80"},
        timeout=300,
    )


def _stored(db: str, *ids: str) -> list[Document]:
    with connect(db, collection="m3vdb", spec=SPEC, create=False) as store:
        return store.get(list(ids))


def _count(db: str) -> int:
    with connect(db, collection="m3vdb", spec=SPEC, create=False) as store:
        return store.count()


def test_done_when_long_documents_two_roots_an_edit_and_a_removal(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: M3Encoder
) -> None:
    """Issue 10's scenario through the console script: a 10,000+-token document is split
    into windows by default; README.md in two roots gives two documents; an edited file is
    replaced as a whole; a removed file is pruned; search shows one row per document."""
    long_text = _long_text(2900)
    n_tokens = len(tiny_encoder.tokenizer(long_text)["input_ids"])  # type: ignore[operator]
    assert n_tokens >= 10_000
    for name, text in {
        "projA/README.md": "Alpha project: Milvus stores sparse vectors.",
        "projA/long.md": long_text,
        "projA/notes.txt": "Notes about a flood in the valley.",
        "projB/README.md": "Beta project: Qdrant keeps named vectors.",
        "projB/old.md": "An old note, removed later.",
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    first = _console(tmp_path, tiny_model_dir, "index", "projA", "projB")
    assert first.returncode == 0, first.stderr
    assert "indexed 5 of 5 documents; 1 split into windows" in first.stdout
    windows = tiny_encoder.encode_windows([long_text], window_tokens=512, overlap_tokens=64)
    assert len(windows) > 20
    assert f"holds {4 + len(windows)} entries" in first.stdout

    (tmp_path / "projA/notes.txt").write_text("Notes, edited: the flood is over.", "utf-8")
    (tmp_path / "projB/old.md").unlink()
    second = _console(tmp_path, tiny_model_dir, "index", "projA", "projB", "--prune")
    assert second.returncode == 0, second.stderr
    assert "indexed 1 of 4 documents; 1 replaced a changed version" in second.stdout
    assert "3 unchanged, already stored" in second.stdout and "1 pruned" in second.stdout
    assert f"holds {3 + len(windows)} entries" in second.stdout

    search = _console(tmp_path, tiny_model_dir, "search", "flood in the valley", "--json")
    assert search.returncode == 0, search.stderr
    hits = json.loads(search.stdout)
    ids = [h["id"] for h in hits]
    assert sorted(ids) == ["projA/README.md", "projA/long.md", "projA/notes.txt", "projB/README.md"]
    long_hit = hits[ids.index("projA/long.md")]
    assert long_hit["entry_id"].startswith("projA/long.md#")
    assert long_hit["metadata"]["parent_id"] == "projA/long.md"
    assert long_hit["metadata"]["chunks"] == len(windows)
    assert search.stderr == ""  # no warning of a third-party library on the screen
    # the database itself (read after the console script has exited: a shard has one user)
    db = f"qdrant+edge:{tmp_path / 'm3vdb.qdrant'}"
    readmes = _stored(db, "projA/README.md", "projB/README.md")
    assert [d.text[:4] for d in readmes] == ["Alph", "Beta"]
    notes = _stored(db, "projA/notes.txt")
    assert [d.text for d in notes] == ["Notes, edited: the flood is over."]
    assert _stored(db, "projB/old.md") == [] and _count(db) == 3 + len(windows)
    assert len(_stored(db, *(f"projA/long.md#{n}" for n in range(len(windows) + 1)))) == len(
        windows
    )


def test_rechunking_replaces_every_entry_of_a_document(
    workdir: Path, capsys: pytest.CaptureFixture[str], tiny_encoder: M3Encoder
) -> None:
    """No `kb-001` beside `kb-001#0`, no stale windows after the window changes."""
    text = " ".join(f"Sentence number {i} about vector databases." for i in range(12))
    (workdir / "kb-001.txt").write_text(text, encoding="utf-8")
    db = DEFAULT_DB
    assert run(capsys, "index", "kb-001.txt", "--quiet")[0] == 0
    assert [d.id for d in _stored(db, "kb-001.txt", "kb-001.txt#0")] == ["kb-001.txt"]
    status, out, _ = run(capsys, "index", "kb-001.txt", "--chunk-tokens", "24", "--quiet")
    n24 = len(tiny_encoder.encode_windows([text], window_tokens=24, overlap_tokens=5))
    assert status == 0 and "1 replaced" in out and "1 split into windows" in out
    assert _stored(db, "kb-001.txt") == [] and _count(db) == n24
    status, out, _ = run(
        capsys, "index", "kb-001.txt", "--chunk-tokens", "40", "--chunk-overlap", "0", "--quiet"
    )
    n40 = len(tiny_encoder.encode_windows([text], window_tokens=40, overlap_tokens=0))
    assert status == 0 and n40 < n24 and _count(db) == n40
    assert _stored(db, f"kb-001.txt#{n40}") == []  # the old windows beyond the new last
    assert run(capsys, "index", "kb-001.txt", "--quiet")[0] == 0
    assert [d.id for d in _stored(db, "kb-001.txt", "kb-001.txt#0")] == ["kb-001.txt"]
    assert _count(db) == 1
    status, out, _ = run(capsys, "index", "kb-001.txt", "--quiet")
    assert "indexed 0 of 1 documents" in out and "1 unchanged" in out


def _progress_lines(stderr: str) -> list[str]:
    """stderr without the progress bar's redraws."""
    parts = [p.strip() for chunk in stderr.split("\n") for p in chunk.split("\r")]
    return [p for p in parts if p and not p.startswith("index:")]


def test_ctrl_c_mid_index_gives_one_line_130_and_a_consistent_collection(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_encoder: M3Encoder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGINT to the process group, as a terminal's Ctrl-C sends it (Milvus Lite's server,
    a child process, gets it too). Troubleshooting: if the run ends before the signal, the
    corpus is too small for this machine; raise n_docs."""
    n_docs = 40
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(n_docs):
        (corpus / f"d{i:02}.md").write_text(_long_text(60 + 30 * (i % 3), seed=i), "utf-8")
    argv = [_script(), "index", "corpus", "--model", str(tiny_model_dir), "--batch-size", "1"]
    argv += ["--db", "m3vdb.db"]  # the slower engine, whose server is a child process
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []

    def reader() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(1), ""):  # type: ignore[union-attr]
            seen.append(chunk)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    deadline = time.monotonic() + 240
    # tqdm redraws at most every 0.1 s, so wait for ANY count of 2 or more, not one value
    progress = re.compile(rf"\b(\d+)/{n_docs}\b")
    while (
        max((int(n) for n in progress.findall("".join(seen))), default=0) < 2
        and time.monotonic() < deadline
    ):
        assert proc.poll() is None, "".join(seen)
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    thread.join(timeout=10)
    assert proc.stdout is not None
    out = proc.stdout.read()
    lines = _progress_lines("".join(seen))
    assert proc.returncode == 130, "".join(seen)
    assert len(lines) == 1 and lines[0].startswith("m3vdb: interrupted after"), lines
    assert "run the same command again to resume" in lines[0] and out == ""

    # every stored document is complete: all its entries, with one content hash
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3VDB_MODEL", str(tiny_model_dir))
    with connect("m3vdb.db", collection="m3vdb", encoder=tiny_encoder, create=False) as store:
        firsts = store.get([f"corpus/d{i:02}.md" for i in range(n_docs)])
        expected = 0
        for first in firsts:
            chunks, parent = first.metadata["chunks"], first.metadata["parent_id"]
            names = [parent] if chunks == 1 else [f"{parent}#{n}" for n in range(chunks)]
            entries = store.get(names)
            assert len(entries) == chunks
            assert {e.metadata["content_hash"] for e in entries} == {first.metadata["content_hash"]}
            expected += chunks
        assert store.count() == expected
        assert store.search("vector databases", 3)
    done = len(firsts)
    assert 0 < done < n_docs
    assert f"after {done} documents were written" in lines[0]
    # the re-run resumes (in this process: it holds the Lite file now)
    status, out, _ = run(capsys, "index", "corpus", "--quiet", "--batch-size", "8")
    assert status == 0
    assert f"indexed {n_docs - done} of {n_docs} documents" in out
    assert f"{done} unchanged, already stored" in out


def test_index_reads_txt_md_and_jsonl_with_path_ids(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = workdir / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Milvus stores sparse vectors.", encoding="utf-8")
    (corpus / "sub" / "b.md").write_text("# Qdrant\n\nNamed vectors.", encoding="utf-8")
    (corpus / ".hidden.txt").write_text("never indexed", encoding="utf-8")
    (corpus / "notes.csv").write_text("ignored", encoding="utf-8")
    (corpus / "empty.md").write_text("  \n", encoding="utf-8")
    (corpus / "more.jsonl").write_text(
        '{"id": 7, "text": "BGE-M3 ist mehrsprachig.", "metadata": {"lang": "de"}}\n\n',
        encoding="utf-8",
    )
    status, out, _ = run(capsys, "index", "./corpus/", "--quiet")
    assert status == 0
    assert "indexed 3 of 4 documents" in out and "1 empty, skipped: corpus/empty.md" in out
    status, out, _ = run(capsys, "search", "sparse vectors", "--json", "-k", "5")
    hits = {h["id"]: h for h in json.loads(out)}
    assert set(hits) == {"corpus/a.txt", "corpus/sub/b.md", "7"}
    assert hits["7"]["metadata"]["lang"] == "de"
    assert hits["7"]["metadata"]["source_file"] == "corpus/more.jsonl"
    assert hits["corpus/sub/b.md"]["metadata"]["source_folders"] == [".", "corpus", "corpus/sub"]
    assert hits["corpus/sub/b.md"]["text"] == "# Qdrant\n\nNamed vectors."


def test_a_repeated_id_fails_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "a.jsonl").write_text('{"id": "x", "text": "one"}\n', encoding="utf-8")
    (workdir / "b.jsonl").write_text('{"id": "y", "text": "two"}\n{"id": "x", "text": "3"}\n')
    status, out, err = run(capsys, "index", "a.jsonl", "b.jsonl", "--quiet")
    assert status == 2 and out == ""
    assert "id 'x' appears twice: at a.jsonl:1 and at b.jsonl:2" in err
    assert not (workdir / "m3vdb.qdrant").exists()


def test_a_bad_file_fails_the_run_with_nothing_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "docs").mkdir()
    for i in range(3):
        (workdir / "docs" / f"ok{i}.txt").write_text(f"good text {i}", encoding="utf-8")
    (workdir / "docs" / "zz.txt").write_bytes(b"caf\xe9 latin-1")
    status, out, err = run(capsys, "index", "docs", "--quiet")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "docs/zz.txt: not UTF-8 text" in err
    assert not (workdir / "m3vdb.qdrant").exists()


def test_no_chunk_refuses_a_long_document_with_its_true_length(
    workdir: Path, capsys: pytest.CaptureFixture[str], tiny_encoder: M3Encoder
) -> None:
    text = "vector " * 1500
    (workdir / "big.txt").write_text(text, encoding="utf-8")
    (workdir / "small.txt").write_text("short", encoding="utf-8")
    n = len(tiny_encoder.tokenizer(text)["input_ids"])  # type: ignore[operator]
    status, _, err = run(capsys, "index", "small.txt", "big.txt", "--quiet", "--no-chunk")
    assert status == 2 and err.count("\n") == 1
    assert f"'big.txt' has {n:,} tokens" in err and "leave --no-chunk out" in err
    # measured before anything was written; the collection made for the run is gone again,
    # and so is the Lite file it created
    assert not (workdir / "m3vdb.qdrant").exists()


def test_search_table_info_and_filters(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert run(capsys, "index", str(EXAMPLE), "--quiet")[0] == 0
    status, out, _ = run(capsys, "search", "AI transforms global society", "-k", "3")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 4
    assert all(cell_width(line) <= 80 for line in lines)
    assert lines[0].split() == ["#", "id", "colbert", "text"]
    status, out, _ = run(
        capsys,
        "search",
        "全球社会",  # shares tokens with the zh and ja texts (sparse needs shared tokens)
        "--mode",
        "sparse",
        "--json",
        "--filter",
        '{"lang": {"in": ["zh", "ja"]}}',
    )
    hits = json.loads(out)
    assert hits and {h["metadata"]["lang"] for h in hits} <= {"zh", "ja"}
    assert all(h["score_label"] == "sparse" and "sparse" in h["signals"] for h in hits)
    status, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert info["entries"] == 8 and set(info["stores"]) == {"dense", "sparse", "colbert"}
    assert info["stores"]["dense"].startswith("32-d")
    status, out, _ = run(capsys, "info")
    assert re.search(r"^entries +8 ", out, re.M) and "QdrantEdgeEngine" in out


def test_index_colbert_fde_is_recorded_shown_and_searched(
    workdir: Path, capsys: pytest.CaptureFixture[str], tiny_encoder: M3Encoder
) -> None:
    """--colbert-fde stores the MUVERA vector: info shows it, --mode colbert reranks its
    candidates by MaxSim (the scores equal an exact MaxSim over the stored rows), and a later
    run without the flag keeps the collection as built."""
    assert run(capsys, "index", str(EXAMPLE), "--colbert-fde", "--quiet")[0] == 0
    status, out, _ = run(capsys, "info", "--json")
    fde = json.loads(out)["stores"]["colbert_fde"]
    assert status == 0 and "4096-d" in fde and "1000 candidates" in fde
    status, out, _ = run(
        capsys, "search", "AI transforms global society", "--mode", "colbert", "--json", "-k", "3"
    )
    hits = json.loads(out)
    assert status == 0 and len(hits) == 3 and {h["score_label"] for h in hits} == {"colbert"}
    spec = IndexSpec(dense_dim=32, colbert_dim=32, colbert_fde=ColbertFde())
    with connect(DEFAULT_DB, collection="m3vdb", spec=spec, create=False) as store:
        wanted = {h["id"] for h in hits}
        stored = {
            doc.id: emb
            for batch in store.scan_embeddings()
            for doc, emb in batch
            if doc.id in wanted
        }
    query = tiny_encoder.encode(["AI transforms global society"])[0]
    for h in hits:
        exact = float((query.colbert @ stored[h["id"]].colbert.T).max(axis=1).sum())
        assert h["score"] == pytest.approx(exact, abs=1e-4)
    # a later run without the flag keeps the collection's FDE (nothing to rewrite here)
    assert run(capsys, "index", str(EXAMPLE), "--quiet")[0] == 0


def test_index_colbert_precision_and_pool_are_recorded_and_shown(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--colbert-precision and --colbert-pool build the collection with them; info and list
    show the precision, the pool factor and the bytes per token; a later run without the
    flags keeps them; Milvus refuses int8 with the databases that store it."""
    pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed")
    db = f"qdrant+edge:{workdir / 'edge'}"
    args = ["--db", db, "--quiet"]
    assert (
        run(
            capsys,
            "index",
            str(EXAMPLE),
            *args,
            "--colbert-precision",
            "int8",
            "--colbert-pool",
            "2",
        )[0]
        == 0
    )
    status, out, _ = run(capsys, "info", "--db", db, "--json")
    storage = json.loads(out)["colbert_storage"]
    assert status == 0 and storage.startswith("int8, 32 bytes per token") and "factor 2" in storage
    status, out, _ = run(capsys, "info", "--db", db)
    assert "colbert storage" in out and "int8, 32 bytes per token" in out
    status, out, _ = run(capsys, "list", "--db", db, "--json")
    (row,) = json.loads(out)
    assert (row["colbert_precision"], row["colbert_pool_factor"]) == ("int8", 2)
    assert row["colbert_bytes_per_token"] == 32
    status, out, _ = run(capsys, "list", "--db", db)
    assert "(int8, 32 B/token, pool 2)" in out
    assert run(capsys, "index", str(EXAMPLE), *args)[0] == 0  # keeps int8 and pool 2
    status, out, _ = run(capsys, "search", "Berliner Mauer", "--db", db, "--mode", "colbert")
    assert status == 0 and out
    status, _, err = run(
        capsys, "index", str(EXAMPLE), "--quiet", "--colbert-precision", "int8", "--db", "m.db"
    )
    assert status != 0 and "Qdrant" in err and "Elasticsearch" in err


@pytest.mark.parametrize("db", ["m3vdb.db", "qdrant"])
def test_the_score_is_labelled_the_same_on_every_database(
    workdir: Path, capsys: pytest.CaptureFixture[str], db: str
) -> None:
    if db == "qdrant":
        pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
        db = f"qdrant+local:{workdir / 'qdrant'}"
    assert run(capsys, "index", str(EXAMPLE), "--db", db, "--quiet")[0] == 0
    for extra, label in [([], "colbert"), (["--no-rerank"], "rrf"), (["--mode", "dense"], "dense")]:
        status, out, _ = run(capsys, "search", "Berliner Mauer", "--db", db, "--json", *extra)
        hits = json.loads(out)
        assert status == 0 and hits
        assert {h["score_label"] for h in hits} == {label}
        assert all(h["signals"][label] == pytest.approx(h["score"]) for h in hits)
        status, out, _ = run(capsys, "search", "Berliner Mauer", "--db", db, "-k", "2", *extra)
        assert out.splitlines()[0].split() == ["#", "id", label, "text"]


def test_drop_recreate_and_mismatch_messages_name_the_cli_fix(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with connect(DEFAULT_DB, collection="m3vdb", spec=IndexSpec()):  # BGE-M3's 1024-d
        pass
    (workdir / "a.txt").write_text("some text", encoding="utf-8")
    status, _, err = run(capsys, "index", "a.txt", "--quiet")
    assert status == 2 and err.count("\n") == 1
    assert "m3vdb index PATH... --recreate" in err and "`m3vdb drop`" in err
    assert "connector.drop()" not in err
    # info reads the collection as it was built, whatever --model says: no mismatch
    status, _, err = run(capsys, "info")
    assert status == 2 and "holds no documents" in err and "--recreate" not in err
    status, out, _ = run(capsys, "index", "a.txt", "--quiet", "--recreate")
    assert status == 0 and "holds 1 entries" in out
    status, _, err = run(capsys, "drop")  # stdin is not a terminal under pytest
    assert status == 2 and "pass --yes" in err
    status, out, _ = run(capsys, "drop", "--yes")
    assert status == 0 and "dropped collection 'm3vdb'" in out
    status, _, err = run(capsys, "drop", "--yes")
    assert status == 2 and "nothing to drop" in err
    # a collection of another model can be dropped without that model
    with connect(DEFAULT_DB, collection="m3vdb", spec=IndexSpec()):
        pass
    assert run(capsys, "drop", "--yes")[0] == 0
    assert run(capsys, "index", "a.txt", "--quiet")[0] == 0


def test_info_and_drop_never_import_torch(workdir: Path, tiny_model_dir: Path) -> None:
    code = (
        "import sys\n"
        "from m3vdb import IndexSpec, connect\n"
        "from m3vdb.cli.main import main\n"
        "spec = IndexSpec(dense_dim=32, colbert_dim=32)\n"
        f"with connect({DEFAULT_DB!r}, collection='m3vdb', spec=spec):\n"
        "    pass\n"
        "for argv in (['info', '--json'], ['drop', '--yes']):\n"
        "    assert main(argv) in (0, 2), argv\n"
        "heavy = sorted({'torch', 'transformers'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "dropped" in done.stdout and "collection" in done.stdout
    help_ = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from m3vdb.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({'numpy', 'torch'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_.stdout.splitlines()[-1] == "[]" and "index" in help_.stdout


def test_tables_are_measured_in_cells_and_fit_80_columns() -> None:
    assert cell_width("abc") == 3 and cell_width("日本語") == 6 and cell_width("🚀") == 2
    assert cut("the quick brown fox jumps", 16) == "the quick brown…"
    assert cut("全球社会的人工智能", 9) == "全球社会…"
    long_text = "word " * 100
    hits = [
        Hit("ノート/日本語のメモ.md", 1.0, long_text, {}, {}),
        Hit("emoji-🚀.md", 0.5, "短い", {}, {}),
        Hit("plain.md#3", 0.25, long_text, {"parent_id": "plain.md", "chunk": 3, "chunks": 9}, {}),
    ]
    table = hits_table(rows(hits, "dense", group=True, k=10), width=80)
    lines = table.splitlines()
    assert len(lines) == 4 and all(cell_width(line) <= 80 for line in lines)
    starts = {cell_width(line[: line.index(word)]) for line, word in zip(lines, ["text", "word"])}
    assert len(starts) == 1  # the text column starts at the same cell on every line
    assert lines[3].split()[1:3] == ["plain.md", "#3/9"] and "…word" in lines[3]
    assert all(line.endswith("…") for line in (lines[1], lines[3]))


@pytest.mark.parametrize(
    ("argv", "status", "needle"),
    [
        (["search", "q", "--filter", "{lang: en}"], 2, "--filter is not JSON"),
        (["search", "q", "--filter", '{"lang": {"like": "e"}}'], 2, "operators ['like']"),
        (["search", "q", "--collection", "typo"], 2, f"no collection 'typo' at {DEFAULT_DB}"),
        (["info", "--collection", "typo"], 2, f"no collection 'typo' at {DEFAULT_DB}"),
        (["search", "q", "--collection", "empty"], 2, "holds no documents"),
        (["search", "q", "--db", "elsewhere.db"], 2, "no database at elsewhere.db"),
        (["search", "q", "--model", "./no-such-model"], 2, "no model directory"),
        (["search", "q", "--db", "nosuch://x"], 2, "unknown database target"),
        (["search", "q", "--db", "milvus://127.0.0.1:1"], 1, "check --db"),
        (["index", "missing.txt"], 2, "no such file or directory"),
        (["index", "bad.jsonl"], 2, "bad.jsonl:2: not JSON"),
        (["index", "a.txt", "--chunk-overlap", "10"], 2, "--chunk-overlap 10 needs --chunk-tokens"),
        (
            ["index", "a.txt", "--chunk-tokens", "100", "--chunk-overlap", "100"],
            2,
            "--chunk-overlap 100 must be at least 0 and smaller than the 98 text tokens",
        ),
        (["index", "a.txt", "--chunk-tokens", "2"], 2, "--chunk-tokens 2 is too small"),
        (["index", "a.txt", "--chunk-tokens", "4000"], 2, "--chunk-tokens 4000 does not fit"),
        (["index", "a.txt", "--device", "nosuchdevice"], 2, "--device nosuchdevice is not a"),
    ],
)
def test_errors_are_one_line_with_the_right_status(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], status: int, needle: str
) -> None:
    (workdir / "bad.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": \n', encoding="utf-8")
    (workdir / "a.txt").write_text("a short text", encoding="utf-8")
    if "typo" in argv or "empty" in argv:
        assert run(capsys, "index", str(EXAMPLE), "--quiet")[0] == 0
    if "empty" in argv:  # a collection that exists and holds nothing
        with connect(DEFAULT_DB, collection="empty", spec=SPEC):
            pass
    got, out, err = run(capsys, *argv)
    assert (got, out) == (status, "")
    assert err.startswith("m3vdb: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "unexpected" not in err
    assert not (workdir / "elsewhere.db").exists()
    if "typo" in argv:  # searching a mistyped collection must not create it
        from m3vdb.connectors import list_collections

        names = {c.name for c in list_collections(DEFAULT_DB)}
        assert "typo" not in names and "m3vdb" in names


def test_device_cuda_without_cuda_is_the_users_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda is valid here")
    (workdir / "a.txt").write_text("text", encoding="utf-8")
    status, _, err = run(capsys, "index", "a.txt", "--device", "cuda", "--quiet")
    assert status == 2 and err.count("\n") == 1
    assert "--device cuda:" in err and "use --device cpu" in err


def test_a_qdrant_local_folder_in_use_is_named(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qdrant_client = pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    (workdir / "a.txt").write_text("text", encoding="utf-8")
    holder = qdrant_client.QdrantClient(path=str(workdir / "q"))
    try:
        status, _, err = run(capsys, "index", "a.txt", "--db", f"qdrant+local:{workdir / 'q'}")
    finally:
        holder.close()
    assert status == 1 and err.count("\n") == 1
    assert "in use by another process" in err and "unexpected" not in err


def test_the_default_is_qdrant_edge_and_an_old_lite_file_is_kept(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --db the CLI uses Qdrant edge in ./m3vdb.qdrant; a ./m3vdb.db from before the
    default changed (Milvus Lite) is still found, with one line saying so; $M3VDB_DB and
    --db choose any target."""
    status, out, err = run(capsys, "index", str(EXAMPLE), "--quiet")
    assert status == 0 and err == "" and DEFAULT_DB in out
    assert (workdir / "m3vdb.qdrant").is_dir() and not (workdir / "m3vdb.db").exists()

    old = workdir / "old"
    old.mkdir()
    monkeypatch.chdir(old)
    assert run(capsys, "index", str(EXAMPLE), "--db", "m3vdb.db", "--quiet")[0] == 0
    status, out, err = run(capsys, "search", "Berliner Mauer", "--json", "-k", "1")
    assert status == 0 and json.loads(out)
    assert (
        err == "m3vdb: using the Milvus Lite file ./m3vdb.db found here (the default is "
        f"now {DEFAULT_DB}; pass --db to choose)\n"
    )
    assert not (old / "m3vdb.qdrant").exists()

    monkeypatch.setenv("M3VDB_DB", f"qdrant+local:{workdir / 'chosen'}")
    status, out, err = run(capsys, "index", str(EXAMPLE), "--quiet")
    assert status == 0 and err == "" and (workdir / "chosen").is_dir()


def test_without_qdrant_edge_the_default_falls_back_to_milvus_lite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where only the Milvus extra is installed (the README's command before 0.3), the default
    stays a Milvus Lite file and says how to get the faster one. The missing package is
    simulated: both are installed here."""
    from m3vdb.cli import defaults

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("M3VDB_DB", raising=False)
    assert defaults.resolve_db(None) == (DEFAULT_DB, None)
    real = defaults.find_spec
    monkeypatch.setattr(
        defaults, "find_spec", lambda name: None if name == "qdrant_edge" else real(name)
    )
    db, notice = defaults.resolve_db(None)
    assert db == "m3vdb.db" and notice and "pip install 'm3vdb[qdrant-edge]'" in notice
    assert defaults.resolve_db("x.db") == ("x.db", None)
