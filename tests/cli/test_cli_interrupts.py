"""Ctrl-C through the console script, at every stage of an indexing run and on every
embedded engine: exit 130 within 2 seconds, every stored document whole, and the same
command then completes.

The stages are found from the outside, as a user sees them: reading (the input file is open
and no database exists yet), encoding and writing (the progress line names the stage; it
moves after every forward pass and every write slice). A checkpoint wider than the tiny one
(hidden 128) makes one long document take seconds to encode and to write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from checkpoint_factory import build_checkpoint

REPO = Path(__file__).resolve().parents[2]
WORDS = (REPO / "tests" / "data" / "multilingual.txt").read_text(encoding="utf-8").split()
ENGINES = {
    "milvus-lite": "m3vdb.db",
    "qdrant-edge": "qdrant+edge:./store",
    "qdrant-local": "qdrant+local:./store",
}
#: Ctrl-C must act within this many seconds (issue 22's bound, kept as it is). The code aims
#: far below it: write slices of ~0.15 s (writes.py) and a check after every forward pass, so
#: a loaded 2-core machine (the engines' own close included) still has more than 1 s margin.
LIMIT_S = 2.0


def _script() -> str:
    script = Path(sys.executable).with_name("m3vdb")
    if not script.exists():
        pytest.skip("the m3vdb console script is not installed (pip install -e .)")
    return str(script)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint slow enough to interrupt: hidden 128, 2 layers."""
    return build_checkpoint(
        tmp_path_factory.mktemp("wide-bge-m3"), hidden_size=128, intermediate_size=256
    )


def _text(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


class _Run:
    """``m3vdb index`` in its own process group, its stderr collected as it comes."""

    def __init__(self, cwd: Path, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [_script(), "index", *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "M3VDB_MODEL": ""},
        )
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        for chunk in iter(lambda: stream.read(1), ""):
            self.seen.append(chunk)

    @property
    def stderr(self) -> str:
        return "".join(self.seen)

    def wait_for(self, ready: object, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            assert self.proc.poll() is None, f"the run ended before the stage: {self.stderr}"
            assert time.monotonic() < deadline, f"the stage never came: {self.stderr}"
            time.sleep(0.02)

    def interrupt(self) -> float:
        """SIGINT to the process group (a terminal's Ctrl-C); seconds until it exited."""
        start = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        elapsed = time.monotonic() - start
        self._thread.join(timeout=10)
        return elapsed


_CHECK = """
import sys
from collections import defaultdict
from m3vdb.connectors import connect
parents = defaultdict(list)
with connect(sys.argv[1], collection="m3vdb", create=False) as store:
    for entry in store.scan():
        parents[str(entry.metadata["parent_id"])].append(entry.metadata)
for parent, metas in parents.items():
    assert len(metas) == metas[0]["chunks"], (parent, len(metas), metas[0]["chunks"])
    assert len({m["content_hash"] for m in metas}) == 1, parent
print(len(parents))
"""


def _check_whole(cwd: Path, target: str) -> int:
    """Every stored document has all its entries with one content hash; returns how many
    documents are stored. In another process: Milvus Lite lets one process open a file."""
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, target], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_ctrl_c_acts_within_2_s_and_the_rerun_completes(
    engine: str, wide_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the encoding of a long document, then (the same command again) during
    its write, then the same command completes: three runs per engine, so the long document
    is encoded to the end once.

    Troubleshooting: "the stage never came" means the run went faster than the progress
    line's first draw (1 s): raise the document's length. A slow exit: see
    m3vdb/indexing/writes.py (write slices) and the engine's close."""
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a-short.md").write_text(_text(40, 1), "utf-8")
    (corpus / "b-long.md").write_text(_text(40_000, 2), "utf-8")
    argv = ["corpus", "--db", ENGINES[engine], "--model", str(wide_model)]
    for stage in ("encoding", "writing"):
        run = _Run(tmp_path, *argv)
        run.wait_for(lambda run=run, stage=stage: stage in run.stderr.rsplit("\r", 1)[-1])
        elapsed = run.interrupt()
        print(f"Ctrl-C during {stage} on {engine}: exited after {elapsed:.2f} s")  # pytest -rP
        assert run.proc.returncode == 130, run.stderr
        assert elapsed < LIMIT_S, f"Ctrl-C took {elapsed:.2f} s during {stage} on {engine}"
        assert "m3vdb: interrupted after" in run.stderr
        if (tmp_path / "m3vdb.db").exists() or (tmp_path / "store").exists():
            assert _check_whole(tmp_path, ENGINES[engine]) <= 2
        else:  # cut before the first write: the new collection was dropped again
            assert stage == "encoding"
    rerun = subprocess.run(
        [_script(), "index", *argv, "--quiet"], cwd=tmp_path, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert _check_whole(tmp_path, ENGINES[engine]) == 2


def test_ctrl_c_while_reading_writes_nothing(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Reading is the same on every engine (no database is opened before every file is read
    and checked). Troubleshooting: "the stage never came": the file was read faster than
    this test polls; raise the number of lines."""
    lines = [f'{{"id": "d{i}", "text": "note {i} about a flood"}}' for i in range(300_000)]
    (tmp_path / "notes.jsonl").write_text("\n".join(lines), "utf-8")
    run = _Run(tmp_path, "notes.jsonl", "--model", str(tiny_model_dir))
    fd_dir = Path(f"/proc/{run.proc.pid}/fd")

    def reading() -> bool:
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            return False
        return any(link.endswith("notes.jsonl") for link in links)

    run.wait_for(reading)
    assert not (tmp_path / "m3vdb.db").exists()  # still reading: nothing opened yet
    elapsed = run.interrupt()
    print(f"Ctrl-C while reading: exited after {elapsed:.2f} s")
    assert run.proc.returncode == 130, run.stderr
    assert elapsed < LIMIT_S, f"Ctrl-C took {elapsed:.2f} s while reading"
    assert not (tmp_path / "m3vdb.db").exists()
