"""The command line's defaults, in one place that every command module can import (the
database helpers and the argument parser both need them)."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

#: The embedded default: Qdrant's Rust engine in a folder. It was the fastest embedded engine
#: at every step of the first hour (bench/first_hour.py); Milvus Lite stays one flag away.
DEFAULT_DB = "qdrant+edge:./m3vdb.qdrant"
#: The default of m3vdb before 0.3: a Milvus Lite file. Kept where it is the one there.
LEGACY_DB = "m3vdb.db"
DEFAULT_COLLECTION = "m3vdb"
DEFAULT_MODEL = "BAAI/bge-m3"
DEFAULT_WINDOW = 512  # = m3vdb.indexing's (not imported here: it pulls numpy in)
DEFAULT_OVERLAP = 64


def resolve_db(given: str | None) -> tuple[str, str | None]:
    """The --db a command uses and, when it is not what the user would assume, one line to
    tell them: ``--db`` if given, else ``$M3VDB_DB``, else ./m3vdb.db where that Milvus Lite
    file exists and ./m3vdb.qdrant does not (a collection from before the default changed
    stays found), else Qdrant edge in ./m3vdb.qdrant, or Milvus Lite where only its extra is
    installed."""
    if given:
        return given, None
    if os.environ.get("M3VDB_DB"):
        return os.environ["M3VDB_DB"], None
    if Path(LEGACY_DB).exists() and not Path(DEFAULT_DB.split(":", 1)[1]).exists():
        return LEGACY_DB, (
            f"using the Milvus Lite file ./{LEGACY_DB} found here (the default is now "
            f"{DEFAULT_DB}; pass --db to choose)"
        )
    if find_spec("qdrant_edge") is None and find_spec("milvus_lite") is not None:
        return LEGACY_DB, (
            f"qdrant-edge-py is not installed, so this uses Milvus Lite in ./{LEGACY_DB} "
            "(pip install 'm3vdb[qdrant-edge]' for the faster default, Qdrant edge)"
        )
    return DEFAULT_DB, None
