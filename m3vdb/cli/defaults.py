"""The command line's defaults, in one place that every command module can import (the
database helpers and the argument parser both need them)."""

from __future__ import annotations

DEFAULT_DB = "m3vdb.db"
DEFAULT_COLLECTION = "m3vdb"
DEFAULT_MODEL = "BAAI/bge-m3"
DEFAULT_WINDOW = 512  # = m3vdb.indexing's (not imported here: it pulls numpy in)
DEFAULT_OVERLAP = 64
