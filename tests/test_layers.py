"""The package's shape: one top-level package, and layers that import downwards only.

If a test here fails, an import crept in at module level where it should be lazy (inside the
function that needs it), or a lower layer started importing a higher one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "torch",
    "transformers",
    "pymilvus",
    "qdrant_client",
    "qdrant_edge",
    "elasticsearch",
    "langchain_core",
    "llama_index",
    "haystack",
    "ray",
)


def _modules_after(statement: str) -> set[str]:
    """Top-level modules loaded by ``statement`` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import m3vdb",
        "import m3vdb.connectors",
        "import m3vdb.schemas",
        "import m3vdb.errors",
        "import m3vdb.indexing",
        "import m3vdb.ray",  # ray itself only when a function runs
        "from m3vdb import connect, Document, Hit, IndexSpec, HybridOptions, InputError",
    ],
)
def test_front_door_and_lower_layers_load_no_torch_and_no_client(statement: str) -> None:
    loaded = _modules_after(statement)
    assert not [m for m in HEAVY if m in loaded], f"{statement!r} loaded {HEAVY}"


def test_schemas_import_neither_encoder_nor_connectors() -> None:
    statement = "\n".join(
        f"import m3vdb.schemas.{p.stem}"
        for p in sorted((ROOT / "schemas").glob("*.py"))
        if p.stem != "__init__"
    )
    loaded = _modules_after(statement)
    assert "m3vdb.connectors" not in loaded and "m3vdb.encoder" not in loaded


def test_the_error_module_is_a_leaf() -> None:
    """Every layer raises these: ``m3vdb.errors`` imports nothing of m3vdb."""
    loaded = _modules_after("import m3vdb.errors")
    assert {m for m in loaded if m.startswith("m3vdb.")} == {"m3vdb.errors"}


def test_the_remote_client_does_not_import_the_server() -> None:
    """Arrows point down: the wire codec both use lives in ``m3vdb.schemas.codec``, so a
    ``RemoteEncoder`` user needs neither FastAPI nor the server package."""
    loaded = _modules_after("import m3vdb.remote")
    assert "m3vdb.serve" not in loaded and "fastapi" not in loaded


def test_encoder_loads_no_database_client() -> None:
    loaded = _modules_after("import m3vdb.encoder")
    assert "torch" in loaded
    assert not [m for m in ("pymilvus", "qdrant_client", "elasticsearch") if m in loaded]
    assert "m3vdb.connectors" not in loaded


def test_m3encoder_is_importable_from_the_front_door() -> None:
    import m3vdb
    from m3vdb.encoder import M3Encoder

    assert m3vdb.M3Encoder is M3Encoder
    assert isinstance(m3vdb.__version__, str) and m3vdb.__version__


@pytest.mark.slow
def test_the_wheel_holds_only_the_m3vdb_package(tmp_path: Path) -> None:
    """Builds the wheel from a copy of the sources (the checkout stays clean) and lists its
    top-level names: only ``m3vdb/`` and its dist-info."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("m3vdb", "encoder", "connectors", "schemas"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("m3vdb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"m3vdb"}
    for sub in ("encoder", "connectors", "schemas", "cli", "langchain"):
        assert f"m3vdb/{sub}/__init__.py" in names
    assert "m3vdb/py.typed" in names
