"""Issue 22 item 3: ``m3vdb index --encoder-url`` stores a long document as token windows,
the same windows a local model gives (the server splits: ``/encode`` with ``window_tokens``).

A real ``m3vdb serve`` app on the tiny checkpoint runs in a thread of this process
(``tests/live_server.py``); the index run is the console script in a subprocess that loads no
model.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="uvicorn is in the serve extra")
from live_server import running  # noqa: E402

from m3vdb.connectors import connect  # noqa: E402
from m3vdb.serve import ServeConfig, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WORDS = (REPO / "tests" / "data" / "multilingual.txt").read_text(encoding="utf-8").split()


def test_encoder_url_indexes_a_long_document_as_local_windows(
    tiny_encoder: object, tmp_path: Path
) -> None:
    """Troubleshooting: "more than one entry holds" in stderr means the client did not find
    RemoteEncoder.encode_windows; different spans mean the server and the local encoder plan
    windows differently (encoder/windows.py is the one copy)."""
    script = Path(sys.executable).with_name("m3vdb")
    if not script.exists():
        pytest.skip("the m3vdb console script is not installed (pip install -e .)")
    rng = random.Random(3)
    long_text = " ".join(rng.choice(WORDS) for _ in range(6_000))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "long.md").write_text(long_text, "utf-8")
    (tmp_path / "notes" / "short.md").write_text("a short note about rivers", "utf-8")
    with running(create_app(tiny_encoder, ServeConfig(model_name="tiny"))) as (base, _):  # type: ignore[arg-type]
        bad = httpx.post(f"{base}/encode", json={"inputs": ["x"], "window_tokens": 2})
        assert bad.status_code == 422 and "window_tokens" in bad.text
        done = subprocess.run(
            [str(script), "index", "notes", "--db", "qdrant+edge:./store", "--quiet"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "M3VDB_ENCODER_URL": base, "M3VDB_MODEL": "/nonexistent"},
            timeout=600,
        )
    assert done.returncode == 0, done.stderr
    assert "1 split into windows" in done.stdout, done.stdout
    with connect(f"qdrant+edge:{tmp_path}/store", collection="m3vdb", create=False) as store:
        pairs = [
            pair
            for batch in store.scan_embeddings({"parent_id": "notes/long.md"}, batch_size=64)
            for pair in batch
        ]
    stored = {doc.id: doc for doc, _ in pairs}
    vectors = {doc.id: emb for doc, emb in pairs}
    local = tiny_encoder.encode_windows([long_text])  # type: ignore[attr-defined]
    assert len(stored) == len(local) > 1
    for n, window in enumerate(local):
        entry = stored[f"notes/long.md#{n}"]
        assert (entry.metadata["char_start"], entry.metadata["char_end"]) == (
            window.char_start,
            window.char_end,
        )
        assert entry.text == window.text
        np.testing.assert_allclose(vectors[entry.id].dense, window.embedding.dense, atol=1e-4)
