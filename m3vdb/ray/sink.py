"""A ray.data Datasink that writes encoded batches into a collection through the connectors,
from the Ray workers (for a database server every worker can reach; an embedded engine
file or folder has one writer, the driver: see ``m3vdb.ray.run``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from ray.data import Datasink

from m3vdb.errors import M3VDBError
from m3vdb.formats.table import FormatInfo, from_record_batch
from m3vdb.indexing.pipeline import IndexReport, write_encoded
from m3vdb.ray.encode import error_record, raise_error_record, split_batch


class CollectionDatasink(Datasink):
    """Writes each block of an encoded Dataset (``m3vdb.ray.encode_dataset``) into
    ``collection`` at ``target`` with :func:`~m3vdb.indexing.pipeline.write_encoded`: a
    stored, changed document is replaced as a whole, as ``m3vdb index`` does. Each write
    task opens the collection (it must exist: the driver creates it) and closes it.

    After ``Dataset.write_datasink``, :attr:`report` holds the sum of every task's counts and
    :meth:`raise_error` raises the first m3vdb error a task met (as its own type).
    """

    def __init__(self, target: str, collection: str, info: FormatInfo, *, options: Any = None):
        self.target = target
        self.collection = collection
        self.info = info
        self.options = options
        self.report = IndexReport()
        self.error: str | None = None  # the first task's error (error_record)

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        from m3vdb.connectors import connect

        report = IndexReport()
        try:
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
        except M3VDBError as exc:  # to the driver as data: Ray would wrap it in its own type
            return {**asdict(report), "error": error_record(exc)}
        return asdict(report)

    def on_write_complete(self, write_result: Any) -> None:
        # a WriteResult (Ray >= 2.4x), or the list of write() returns (older Ray Data)
        for counts in getattr(write_result, "write_returns", write_result):
            for key, value in counts.items():
                if key == "error":
                    self.error = self.error or value
                elif key != "seconds":
                    setattr(self.report, key, getattr(self.report, key) + value)

    def raise_error(self) -> None:
        """Raises the first m3vdb error a write task met (after ``write_datasink``)."""
        if self.error is not None:
            raise_error_record(self.error)

    @property
    def supports_distributed_writes(self) -> bool:
        return True
