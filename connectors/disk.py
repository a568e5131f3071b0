"""Free space before a write to an embedded engine whose full disk is a crash or a hang.

Qdrant edge keeps its segments in memory-mapped, sparse files: a page first touched when the
file system is full kills the process with SIGBUS, and no exception can be raised then; a
Milvus Lite server whose disk fills stops answering. So the room a write may need is checked
BEFORE the write is handed to the engine, and a write that may not fit is a BackendError that
says how much is needed and how much is free. (Qdrant local reports a full disk itself.)

What a write to Qdrant edge may need: the pages the shard's files already reserve but the disk
does not back yet (their apparent size less their allocated blocks: it may touch any of them),
plus
the batch's own bytes times :data:`WRITE_AMPLIFICATION` (WAL, segment copies, indexes), plus
:data:`MARGIN_BYTES`. Measured on Qdrant edge 0.9 (64-d vectors, 100 ColBERT rows a document):
an empty shard reserves ~140 MB it does not back; 50 documents (1.3 MB of vectors) allocate
~3 MB. Milvus Lite reserves nothing ahead: 3x the batch plus the margin.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence

from m3vdb.errors import BackendError
from m3vdb.schemas.data import Document, M3Embedding

WRITE_AMPLIFICATION = 3
MARGIN_BYTES = 16 * 2**20


def unbacked_bytes(folder: str) -> int:
    """The bytes the files under ``folder`` reserve (apparent size) but the disk does not
    back yet (allocated blocks): what a memory-mapped engine may still touch."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                info = os.stat(os.path.join(root, name))
            except OSError:  # removed while walking
                continue
            total += max(0, info.st_size - info.st_blocks * 512)
    return total


def batch_bytes(pairs: Sequence[tuple[Document, M3Embedding]]) -> int:
    """The raw bytes of a batch: text, metadata and every vector."""
    total = 0
    for doc, emb in pairs:
        total += len(doc.text.encode("utf-8", "surrogatepass"))
        total += len(json.dumps(doc.metadata, default=str))
        total += 0 if emb.dense is None else emb.dense.nbytes
        total += 0 if emb.sparse is None else 8 * len(emb.sparse)
        total += 0 if emb.colbert is None else emb.colbert.nbytes
    return total


def check_room(folder: str, needed: int, what: str) -> None:
    """BackendError (not retriable) when the file system holding ``folder`` has less than
    ``needed`` bytes free."""
    existing = os.path.abspath(folder)
    while not os.path.isdir(existing):  # a folder about to be created: its file system
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise BackendError(
            f"not enough free space for {what} at {folder}: it may need {_mib(needed)} "
            f"and the file system has {_mib(free)} free (an embedded engine whose disk fills "
            "crashes or hangs instead of answering); free some space or move the database to "
            "a larger disk. Nothing was written",
            retriable=False,
        )


def check_room_for_write(folder: str, pairs: Sequence[tuple[Document, M3Embedding]]) -> None:
    """:func:`check_room` for one batch (see the module docstring for the estimate)."""
    needed = unbacked_bytes(folder) + WRITE_AMPLIFICATION * batch_bytes(pairs) + MARGIN_BYTES
    check_room(folder, needed, f"a batch of {len(pairs)} documents")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"
