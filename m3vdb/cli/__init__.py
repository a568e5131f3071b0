"""The ``m3vdb`` command line: index files, search, describe or drop a collection.

``m3vdb index PATH...``, ``m3vdb search "query"``, ``m3vdb info``, ``m3vdb drop``; see
``m3vdb --help``. Modules: ``sources`` (reading and ids), ``indexing`` (windows, replace,
resume, prune, Ctrl-C), ``database`` (open / drop with the CLI's messages), ``model`` (the
model's dimensions without torch, the encoder), ``render`` (tables, JSON, summaries).
Without ``--db`` everything goes to an embedded Milvus Lite file in the working directory.
"""

from __future__ import annotations

from m3vdb.cli.main import main

__all__ = ["main"]
