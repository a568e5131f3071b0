"""Indexing as a library: the job ``m3vdb index``, the framework stores and Python code share.

Files, folders or documents go in; long documents become overlapping token windows linked to
their document, unchanged documents are skipped (resume by content), changed ones are replaced
as a whole, Ctrl-C never cuts a write, and folders can be pruned of documents whose files are
gone. :func:`index` is the front door (also ``m3vdb.index``); :func:`run` indexes into a
collection that is already open.

Layer: above ``m3vdb.connectors`` (it writes through a collection's public methods) and the
``Encoder`` protocol; below the surfaces. It never imports torch or a database client itself.
"""

from __future__ import annotations

from m3vdb.indexing.chunking import DEFAULT_OVERLAP, DEFAULT_WINDOW, Chunking
from m3vdb.indexing.pipeline import IndexReport
from m3vdb.indexing.run import index, run
from m3vdb.indexing.sources import Corpus

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_WINDOW",
    "Chunking",
    "Corpus",
    "IndexReport",
    "index",
    "run",
]
