"""A Qdrant local folder held by another process (issue 14, item 8).

Local mode locks its folder for the client's lifetime. Opening a held folder must say that it
is in use by another process and what to do, as an m3vdb error, not qdrant-client's raw
RuntimeError. The holder is a real second Python process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("qdrant_client", reason="qdrant-client not installed")

from m3vdb.connectors import connect  # noqa: E402
from m3vdb.errors import BackendError, M3VDBError  # noqa: E402
from m3vdb.schemas.spec import IndexSpec  # noqa: E402

SPEC = IndexSpec(dense_dim=4, colbert_dim=4)

HOLDER = textwrap.dedent(
    """
    import sys
    from qdrant_client import QdrantClient

    client = QdrantClient(path=sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()  # hold the folder until the test closes our stdin
    client.close()
    """
)


def test_a_folder_held_by_another_process_is_a_clear_m3vdb_error(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(BackendError) as info:
            connect(f"qdrant+local:{folder}", collection="c", spec=SPEC)
        error = info.value
        assert isinstance(error, M3VDBError) and not error.retriable
        message = str(error)
        assert str(folder) in message
        assert "in use by another process" in message
        assert "Close the other client" in message and "Qdrant server" in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    # Once the other process has let go, the same folder opens (the message's advice works).
    with connect(f"qdrant+local:{folder}", collection="c", spec=SPEC) as store:
        assert store.count() == 0
