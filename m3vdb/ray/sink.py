"""A ray.data Datasink that writes encoded batches into a collection through the connectors,
from the Ray workers (for a database server every worker can reach; an embedded engine
file or folder has one writer, the driver: see ``m3vdb.ray.run``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from ray.data import Datasink

from m3vdb.formats.table import FormatInfo, from_record_batch
from m3vdb.indexing.pipeline import IndexReport, write_encoded
from m3vdb.ray.encode import split_batch


class CollectionDatasink(Datasink):
    """Writes each block of an encoded Dataset (``m3vdb.ray.encode_dataset``) into
    ``collection`` at ``target`` with :func:`~m3vdb.indexing.pipeline.write_encoded`: a
    stored, changed document is replaced as a whole, as ``m3vdb index`` does. Each write
    task opens the collection (it must exist: the driver creates it) and closes it.

    After ``Dataset.write_datasink``, :attr:`report` holds the sum of every task's counts.
    """

    def __init__(self, target: str, collection: str, info: FormatInfo, *, options: Any = None):
        self.target = target
        self.collection = collection
        self.info = info
        self.options = options
        self.report = IndexReport()

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        from m3vdb.connectors import connect

        report = IndexReport()
        with connect(
            self.target, collection=self.collection, options=self.options, create=False
        ) as dest:
            for block in blocks:
                entries, accounting = split_batch(block, self.info)
                write_encoded(
                    dest,
                    list(from_record_batch(entries)),
                    unindexable=accounting.unindexable,
                    tokens=accounting.tokens,
                    report=report,
                )
        return asdict(report)

    def on_write_complete(self, write_result: Any) -> None:
        for counts in write_result.write_returns:
            for key, value in counts.items():
                if key != "seconds":
                    setattr(self.report, key, getattr(self.report, key) + value)

    @property
    def supports_distributed_writes(self) -> bool:
        return True
