"""The ``m3vdb`` command line: index files, search, and describe a collection.

``m3vdb index PATH...``, ``m3vdb search "query"``, ``m3vdb info``; see ``m3vdb --help``.
Without ``--db`` everything goes to an embedded Milvus Lite file in the working directory.
"""

from __future__ import annotations

from m3vdb.cli.main import main

__all__ = ["main"]
