"""The ``m3vdb`` command line on the embedded engines with the tiny checkpoint: the README's
main job through the console script, then each command and error through ``main(argv)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m3vdb.cli.main import main
from m3vdb.connectors import connect
from m3vdb.encoder import M3Encoder

pytest.importorskip("milvus_lite", reason="milvus-lite (the default embedded engine) is missing")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "crosslingual.jsonl"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    """A fresh working directory (the embedded default ./m3vdb.db lands here) with the tiny
    model as the default --model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3VDB_MODEL", str(tiny_model_dir))
    return tmp_path


def _script() -> str:
    script = Path(sys.executable).with_name("m3vdb")
    if not script.exists():
        pytest.skip("the m3vdb console script is not installed (pip install -e .)")
    return str(script)


def test_readme_main_job_through_the_console_script(tmp_path: Path, tiny_model_dir: Path) -> None:
    env = {**os.environ, "M3VDB_MODEL": ""}  # the explicit --model must win
    index = subprocess.run(
        [_script(), "index", str(EXAMPLE), "--model", str(tiny_model_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert index.returncode == 0, index.stderr
    assert "indexed 8 of 8 documents" in index.stdout
    assert (tmp_path / "m3vdb.db").exists()
    search = subprocess.run(
        [_script(), "search", "AI transforms global society", "--model", str(tiny_model_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert search.returncode == 0, search.stderr
    lines = search.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "id", "score"]
    ranked = [line.split()[1] for line in lines[1:]]
    assert sorted(ranked) == sorted(json.loads(x)["id"] for x in EXAMPLE.read_text().splitlines())


def test_index_reads_txt_md_and_jsonl_with_relative_ids(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = workdir / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Milvus stores sparse vectors.", encoding="utf-8")
    (corpus / "sub" / "b.md").write_text("# Qdrant\n\nNamed vectors.", encoding="utf-8")
    (corpus / ".hidden.txt").write_text("never indexed", encoding="utf-8")
    (corpus / "notes.csv").write_text("ignored", encoding="utf-8")
    (corpus / "more.jsonl").write_text(
        '{"id": 7, "text": "BGE-M3 ist mehrsprachig.", "metadata": {"lang": "de"}}\n\n'
        '{"id": "x", "text": "   "}\n',
        encoding="utf-8",
    )
    status, out, _ = run(capsys, "index", str(corpus), "--quiet")
    assert status == 0
    assert "indexed 3 of 4 documents" in out and "1 with no indexable text" in out
    status, out, _ = run(capsys, "search", "sparse vectors", "--json", "-k", "5")
    hits = {h["id"]: h for h in json.loads(out)}
    assert set(hits) == {"a.txt", "sub/b.md", "7"}
    assert hits["7"]["metadata"] == {"lang": "de"}
    assert hits["sub/b.md"]["text"] == "# Qdrant\n\nNamed vectors."


def test_resume_after_an_interruption_skips_what_is_stored(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encode = M3Encoder.encode
    calls = {"n": 0}

    def interrupted(self: M3Encoder, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch: Ctrl-C
            raise KeyboardInterrupt
        return real_encode(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(M3Encoder, "encode", interrupted)
    status, _, err = run(capsys, "index", str(EXAMPLE), "--batch-size", "3", "--quiet")
    assert status == 130 and "run the same command again to resume" in err
    monkeypatch.setattr(M3Encoder, "encode", real_encode)
    status, out, _ = run(capsys, "index", str(EXAMPLE), "--batch-size", "3", "--quiet")
    assert status == 0
    assert "indexed 2 of 8 documents" in out and "6 already stored, skipped" in out
    assert "holds 8 entries" in out
    status, out, _ = run(capsys, "index", str(EXAMPLE), "--quiet", "--no-resume")
    assert "indexed 8 of 8 documents" in out and "holds 8 entries" in out


def test_chunking_links_chunks_to_their_document_and_resumes(
    workdir: Path, capsys: pytest.CaptureFixture[str], tiny_encoder: M3Encoder
) -> None:
    text = " ".join(f"Sentence number {i} about vector databases." for i in range(12))
    (workdir / "long.txt").write_text(text, encoding="utf-8")
    (workdir / "short.txt").write_text("A short note.", encoding="utf-8")
    argv = ["index", "long.txt", "short.txt", "--chunk-tokens", "24", "--chunk-overlap", "4"]
    status, out, _ = run(capsys, *argv, "--quiet")
    assert status == 0
    windows = tiny_encoder.encode_windows([text], window_tokens=24, overlap_tokens=4)
    assert len(windows) > 2
    assert f"indexed 2 of 2 documents; {len(windows) + 1} entries" in out
    status, out, _ = run(
        capsys,
        "search",
        "vector databases",
        "--json",
        "-k",
        "50",
        "--filter",
        '{"parent_id": "long.txt"}',
    )
    hits = sorted(json.loads(out), key=lambda h: h["metadata"]["chunk"])
    assert [h["id"] for h in hits] == [f"long.txt#{n}" for n in range(len(windows))]
    assert [h["text"] for h in hits] == [w.text for w in windows]
    assert all(h["metadata"]["chunks"] == len(windows) for h in hits)
    status, out, _ = run(capsys, *argv, "--quiet")
    assert "indexed 0 of 2 documents" in out and "2 already stored" in out


def test_a_document_too_long_for_one_entry_asks_for_chunking(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "big.txt").write_text("vector " * 1500, encoding="utf-8")
    status, _, err = run(capsys, "index", "big.txt", "--quiet")
    assert status == 2
    assert "--chunk-tokens" in err and err.count("\n") == 1


def test_search_table_info_and_filters(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "index", str(EXAMPLE), "--quiet")[0] == 0
    status, out, _ = run(capsys, "search", "AI transforms global society", "-k", "3")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 4
    assert lines[0].split() == ["#", "id", "score", "colbert", "fusion", "text"]
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
    assert all(set(h["signals"]) == {"sparse"} for h in hits)
    status, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert info["entries"] == 8 and set(info["stores"]) == {"dense", "sparse", "colbert"}
    assert info["stores"]["dense"].startswith("32-d")
    status, out, _ = run(capsys, "info")
    assert "entries     8" in out and "MilvusConnector" in out


def test_qdrant_local_target(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    db = f"qdrant+local:{workdir / 'qdrant'}"
    assert run(capsys, "index", str(EXAMPLE), "--db", db, "--quiet")[0] == 0
    status, out, _ = run(capsys, "search", "Berliner Mauer 1989", "--db", db, "--json", "-k", "2")
    assert status == 0 and len(json.loads(out)) == 2
    assert "QdrantConnector" in run(capsys, "info", "--db", db)[1]


@pytest.mark.parametrize(
    ("argv", "status", "needle"),
    [
        (["search", "q", "--filter", "{lang: en}"], 2, "--filter is not JSON"),
        (["search", "q", "--filter", '{"lang": {"like": "e"}}'], 2, "operators ['like']"),
        (["search", "q", "--collection", "typo"], 2, "no collection 'typo' at m3vdb.db"),
        (["info", "--collection", "typo"], 2, "no collection 'typo' at m3vdb.db"),
        (["search", "q", "--collection", "empty"], 2, "holds no documents"),
        (["search", "q", "--db", "elsewhere.db"], 2, "no database at elsewhere.db"),
        (["search", "q", "--model", "./no-such-model"], 2, "no model directory"),
        (["search", "q", "--db", "nosuch://x"], 2, "unknown database target"),
        (["search", "q", "--db", "milvus://127.0.0.1:1"], 1, "check --db"),
        (["index", "missing.txt"], 2, "no such file or directory"),
        (["index", "bad.jsonl"], 2, "bad.jsonl:2: not JSON"),
    ],
)
def test_errors_are_one_line_with_the_right_status(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], status: int, needle: str
) -> None:
    (workdir / "bad.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": \n', encoding="utf-8")
    if "typo" in argv or "empty" in argv:
        assert run(capsys, "index", str(EXAMPLE), "--quiet")[0] == 0
    if "empty" in argv:  # a collection that exists and holds nothing
        encoder = M3Encoder(os.environ["M3VDB_MODEL"])
        with connect("m3vdb.db", collection="empty", encoder=encoder):
            pass
    got, out, err = run(capsys, *argv)
    assert (got, out) == (status, "")
    assert err.startswith("m3vdb: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert not (workdir / "elsewhere.db").exists()
    if "typo" in argv:  # searching a mistyped collection must not create it
        from pymilvus import MilvusClient

        client = MilvusClient(str(workdir / "m3vdb.db"))
        try:
            assert not client.has_collection("typo")
            assert client.has_collection("m3vdb")
        finally:
            client.close()
