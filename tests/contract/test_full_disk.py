"""A full disk is an error, never a crash (issue 26 item 8), on Qdrant edge, whose memory-mapped
segments killed the writer with SIGBUS when its file system filled: a writer on a small real
file system (tmpfs, mounted for the test) ends with m3vdb's BackendError, and the shard holds
every batch that was acknowledged, complete.

Troubleshooting: mounting needs root (CI and the developers' machines run as root); where the
mount is refused the test skips with the reason. A writer that dies with a signal (returncode
-7, SIGBUS) means a write reached the engine without the room it needed: see
``connectors/disk.py`` for the estimate.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed")

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import m3vdb
    from m3vdb import Document, IndexSpec, M3Embedding

    rng = np.random.default_rng(0)

    def emb():
        d = rng.standard_normal(64).astype(np.float32)
        c = rng.standard_normal((100, 64)).astype(np.float32)
        return M3Embedding(
            dense=d / np.linalg.norm(d),
            sparse={int(i): 0.5 for i in rng.choice(5000, 30, replace=False)},
            colbert=c / np.linalg.norm(c, axis=1, keepdims=True),
        )

    spec = IndexSpec(dense_dim=64, colbert_dim=64)
    with m3vdb.connect(sys.argv[1], collection="c", spec=spec) as store:
        for batch in range(200):
            store.upsert([(Document(f"d{batch}-{i}", "text " * 50, {}), emb()) for i in range(50)])
            print(f"acknowledged {batch}", flush=True)
    """
)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 230 MiB tmpfs: an empty edge shard reserves ~190 MiB of mapped pages, so a few dozen
    batches fit before the check must refuse one."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=230m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_an_error_and_acknowledged_batches_stay(
    small_disk: Path, tmp_path: Path
) -> None:
    import m3vdb

    writer = subprocess.run(
        [sys.executable, "-c", WRITER, f"qdrant+edge:{small_disk / 'edge'}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert writer.returncode == 1, f"the writer died: {writer.returncode} {writer.stderr[-500:]}"
    assert "BackendError: not enough free space" in writer.stderr
    acknowledged = writer.stdout.splitlines()
    assert len(acknowledged) >= 2  # some batches fit before the refusal
    # the shard, moved to a disk with room, holds every acknowledged batch, complete
    copy = tmp_path / "copy"
    shutil.copytree(small_disk / "edge", copy)
    with m3vdb.connect(f"qdrant+edge:{copy}", collection="c") as store:
        assert store.count() == 50 * len(acknowledged)
        last = len(acknowledged) - 1
        docs = store.get([f"d{last}-{i}" for i in range(50)])
        assert len(docs) == 50 and all(d.text == "text " * 50 for d in docs)
