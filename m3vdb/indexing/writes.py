"""Writing one document's entries so that Ctrl-C acts within a second and never leaves half a
document.

A batch of long documents is tens of thousands of ColBERT rows: written as one call, Milvus
Lite took 77-116 s (about 3,500 rows of 1,024 floats per second here), all of it with Ctrl-C
held back. So entries are written in slices sized to take about :data:`TARGET_SECONDS` each
(measured as the run goes: engines and disks differ by 10x), with a Ctrl-C check between
slices; a document interrupted between two of its slices has the entries already written
deleted again, so the collection holds each document whole or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from m3vdb.connectors.base import Connector
from m3vdb.indexing.interrupts import InterruptGuard
from m3vdb.schemas.data import Document, M3Embedding

Pair = tuple[Document, M3Embedding]

#: Seconds one slice should take; Ctrl-C waits at most for the slice in flight.
TARGET_SECONDS = 0.15
#: Bytes of the first slice (before any rate is measured): ~0.07 s on Milvus Lite here.
FIRST_SLICE_BYTES = 512 << 10
_MIN_SLICE_BYTES = 64 << 10
_MAX_SLICE_BYTES = 256 << 20


def entry_bytes(pair: Pair) -> int:
    """About how many bytes an entry sends to the database (vectors and text)."""
    doc, emb = pair
    size = len(doc.text.encode("utf-8", "surrogatepass")) + 256
    if emb.dense is not None:
        size += emb.dense.nbytes
    if emb.sparse:
        size += 8 * len(emb.sparse)
    if emb.colbert is not None:
        size += emb.colbert.nbytes
    return size


class SliceSizer:
    """How many bytes the next slice may hold: the last slices' write rate times
    :data:`TARGET_SECONDS`."""

    def __init__(self, target_seconds: float = TARGET_SECONDS) -> None:
        self.target = target_seconds
        self.budget = FIRST_SLICE_BYTES
        self._rate = 0.0  # bytes per second, smoothed

    def observe(self, size: int, seconds: float) -> None:
        if seconds <= 0:
            return
        rate = size / seconds
        self._rate = rate if not self._rate else 0.5 * self._rate + 0.5 * rate
        wanted = int(self._rate * self.target)
        self.budget = max(_MIN_SLICE_BYTES, min(_MAX_SLICE_BYTES, wanted))

    def slices(self, pairs: Sequence[Pair]) -> Iterator[list[Pair]]:
        """``pairs`` in order, in slices of at most ``budget`` bytes (at least one entry);
        the budget is read again for each slice."""
        start = 0
        while start < len(pairs):
            end, size = start, 0
            while end < len(pairs) and (
                end == start or size + entry_bytes(pairs[end]) <= self.budget
            ):
                size += entry_bytes(pairs[end])
                end += 1
            yield list(pairs[start:end])
            start = end


def write_whole(
    connector: Connector,
    pairs: Sequence[Pair],
    guard: InterruptGuard,
    sizer: SliceSizer,
    *,
    on_complete: Callable[[], None],
    on_slice: Callable[[int], None] | None = None,
) -> None:
    """Writes one document's entries in slices; ``on_complete`` runs inside the last slice's
    protected block (so a Ctrl-C held back during it finds the document counted).

    If anything stops the write between slices (Ctrl-C, an error), the entries written so far
    are deleted again before the exception goes on: no half document stays.
    """
    written: list[str] = []
    try:
        for part in sizer.slices(pairs):
            size = sum(entry_bytes(p) for p in part)
            with guard.critical():
                start = time.perf_counter()
                connector.upsert(part, batch_size=len(part))
                sizer.observe(size, time.perf_counter() - start)
                written += [doc.id for doc, _ in part]
                if on_slice is not None:
                    on_slice(len(part))
                if len(written) == len(pairs):
                    on_complete()
    except BaseException:
        if written and len(written) < len(pairs):
            with guard.critical():
                connector.delete(written)
        raise
