"""The whole lifecycle through the ``m3vdb`` console script on every embedded engine: index,
search in every mode, info, list, drop, list again, index again (recreate) — the command-line
leg of the contract suite (issue 21).

Troubleshooting: the console script needs ``pip install -e .`` (skipped otherwise); each case
runs in its own temporary folder with the tiny checkpoint as ``--model``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "crosslingual.jsonl"
ENGINES = {
    "milvus-lite": ("milvus_lite", "m3vdb.db"),
    "qdrant-local": ("qdrant_client", "qdrant+local:qdrant"),
    "qdrant-edge": ("qdrant_edge", "qdrant+edge:edge"),
}


def _m3vdb(cwd: Path, model: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("m3vdb")
    if not script.exists():
        pytest.skip("the m3vdb console script is not installed (pip install -e .)")
    return subprocess.run(
        [str(script), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "M3VDB_MODEL": str(model), "COLUMNS": "100"},
        timeout=300,
    )


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_lifecycle_through_the_console_script(
    engine: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    package, db = ENGINES[engine]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")

    def ok(*argv: str) -> str:
        done = _m3vdb(tmp_path, tiny_model_dir, *argv)
        assert done.returncode == 0, f"m3vdb {' '.join(argv)}: {done.stderr}"
        return done.stdout

    assert "indexed 8 of 8 documents" in ok("index", str(EXAMPLE), "--db", db, "--quiet")
    for mode in ("dense", "sparse", "colbert", "hybrid"):
        hits = json.loads(ok("search", "Berliner Mauer", "--db", db, "--mode", mode, "--json"))
        assert hits and all(h["score_label"] in (mode, "colbert") for h in hits), mode
    info = json.loads(ok("info", "--db", db, "--json"))
    assert info["entries"] == 8 and info["model"] == str(tiny_model_dir)
    (listed,) = json.loads(ok("list", "--db", db, "--json"))
    assert listed == {
        "collection": "m3vdb",
        "entries": 8,
        "model": str(tiny_model_dir),
        "dense_dim": 32,
        "colbert_dim": 32,
        "stores": ["dense", "sparse", "colbert"],
        "colbert_precision": "float32",
        "colbert_pool_factor": 1,
        "colbert_bytes_per_token": 128.0,
    }
    assert "m3vdb" in ok("list", "--db", db)
    assert "dropped collection 'm3vdb'" in ok("drop", "--db", db, "--yes")
    assert json.loads(ok("list", "--db", db, "--json")) == []
    assert "indexed 8 of 8" in ok("index", str(EXAMPLE), "--db", db, "--quiet", "--recreate")
    assert json.loads(ok("list", "--db", db, "--json"))[0]["entries"] == 8
