"""A full disk is an error, never a crash or a hang (issue 26 item 8): on Qdrant edge, whose
memory-mapped segments killed the writer with SIGBUS when its file system filled, and on Milvus
Lite, whose server stopped answering. A writer on a small real file system (tmpfs, mounted for
the test) ends with m3vdb's BackendError, and the database, moved to a disk with room, holds
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
from pathlib import Path

import pytest

#: engine -> (package, tmpfs size, the target on the mount, the target of the copy)
ENGINES = {
    # an empty edge shard reserves ~190 MiB of mapped pages: a few dozen batches fit in 230
    "qdrant-edge": ("qdrant_edge", "230m", "qdrant+edge:{}/edge", "edge"),
    "milvus-lite": ("milvus_lite", "60m", "milvus-lite:{}/m3vdb.db", "m3vdb.db"),
}

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


def _mounted(mount: Path, size: str) -> bool:
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_full_disk_is_an_error_and_acknowledged_batches_stay(engine: str, tmp_path: Path) -> None:
    import m3vdb

    package, size, target, stored = ENGINES[engine]
    pytest.importorskip(package, reason=f"{package} is not installed")
    small = tmp_path / "small"
    if not _mounted(small, size):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, target.format(small)],
            capture_output=True,
            text=True,
            timeout=300,  # a hang fails the test instead of the suite
            cwd=small,
        )
        assert writer.returncode == 1, f"died: {writer.returncode} {writer.stderr[-500:]}"
        assert "BackendError: not enough free space" in writer.stderr
        acknowledged = writer.stdout.splitlines()
        assert len(acknowledged) >= 2  # some batches fit before the refusal
        # moved to a disk with room, the database holds every acknowledged batch, complete
        copy = tmp_path / "copy"
        copy.mkdir()
        source = small / stored
        if source.is_dir():
            shutil.copytree(source, copy / stored)
        else:
            shutil.copy(source, copy / stored)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
    with m3vdb.connect(target.format(copy), collection="c") as store:
        assert store.count() == 50 * len(acknowledged)
        last = len(acknowledged) - 1
        docs = store.get([f"d{last}-{i}" for i in range(50)])
        assert len(docs) == 50 and all(d.text == "text " * 50 for d in docs)
