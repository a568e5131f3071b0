"""The m3vdb embedding format on Parquet: a streaming writer and reader.

A dataset is one ``.parquet`` file, or a folder of part files (``part-00000.parquet``, ...)
read in sorted name order; every part carries the same ``m3vdb`` schema metadata
(:class:`~m3vdb.formats.table.FormatInfo`). Memory is bounded by a batch: the writer flushes
a row group every ``rows_per_group`` rows, the reader decodes one batch at a time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from m3vdb.errors import InputError
from m3vdb.formats.table import (
    FormatInfo,
    arrow_schema,
    from_record_batch,
    pyarrow,
    to_record_batch,
)
from m3vdb.schemas.data import Document, M3Embedding

Entries = Sequence[tuple[Document, M3Embedding]]

#: Rows per row group: entries with ColBERT rows are large (up to ~4 MB each at 1024-d).
ROWS_PER_GROUP = 256
#: Rows per part file when writing a folder.
ROWS_PER_PART = 100_000


def _pq() -> Any:
    pyarrow()  # the MissingDependencyError with the pip command when absent
    import pyarrow.parquet as pq

    return pq


def is_folder_output(out: str | os.PathLike[str]) -> bool:
    """A path not ending in ``.parquet`` names a folder of part files."""
    return not str(out).lower().endswith(".parquet")


class EmbeddingWriter:
    """Writes entries to ``out`` (one file, or a folder of part files), streaming.

    A context manager: the dataset appears at ``out`` only when the block ends without an
    error (written under a temporary name, then renamed), so an interrupted run leaves no
    half dataset behind.

    Args:
        out: ``*.parquet`` for one file; any other path for a folder of part files.
        info: what the dataset says about itself.
        rows_per_group: rows per Parquet row group (the unit a reader decodes).
        rows_per_part: rows per part file (folders only).

    Raises:
        InputError: ``out`` exists already (nothing is overwritten).
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        info: FormatInfo,
        *,
        rows_per_group: int = ROWS_PER_GROUP,
        rows_per_part: int = ROWS_PER_PART,
    ) -> None:
        if rows_per_group <= 0 or rows_per_part <= 0:
            raise InputError("rows_per_group and rows_per_part must be positive")
        self.out = Path(out)
        if self.out.exists():
            raise InputError(
                f"{self.out} exists already; remove it or choose another output path "
                "(m3vdb never overwrites a dataset)"
            )
        self.info = info
        self.folder = is_folder_output(out)
        self._schema = arrow_schema(info)
        self._rows_per_group = rows_per_group
        self._rows_per_part = rows_per_part
        self._tmp = self.out.with_name(f".{self.out.name}.m3vdb-partial-{os.getpid()}")
        self._writer: Any = None
        self._part_rows = 0
        self._parts = 0
        self.rows = 0

    def __enter__(self) -> EmbeddingWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.folder:
            self._tmp.mkdir()
        return self

    def write(self, entries: Entries) -> None:
        """Appends entries (validated against ``info``: a wrong dimension is an InputError)."""
        if not entries:
            return
        batch = to_record_batch(entries, self.info)
        start = 0
        while start < batch.num_rows:
            writer = self._current()
            room = self._rows_per_part - self._part_rows if self.folder else batch.num_rows - start
            piece = batch.slice(start, min(room, batch.num_rows - start))
            writer.write_batch(piece, row_group_size=self._rows_per_group)
            self._part_rows += piece.num_rows
            self.rows += piece.num_rows
            start += piece.num_rows
            if self.folder and self._part_rows >= self._rows_per_part:
                writer.close()
                self._writer = None

    def _current(self) -> Any:
        if self._writer is None:
            if self.folder:
                path = self._tmp / f"part-{self._parts:05d}.parquet"
                self._parts += 1
            else:
                path = self._tmp
            self._writer = _pq().ParquetWriter(str(path), self._schema)
            self._part_rows = 0
        return self._writer

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if self._writer is None and (not self.folder or self._parts == 0):
                self._current()  # an empty dataset still has its schema
            self._writer.close() if self._writer is not None else None
        finally:
            self._writer = None
            if exc_type is None:
                os.replace(self._tmp, self.out)
            elif self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)


def part_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files of a dataset: the file itself, or a folder's ``*.parquet`` files in sorted
    name order (names starting with ``.`` or ``_`` left out)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(f"no m3vdb embedding file or folder at {p}")
    parts = sorted(
        f for f in p.iterdir() if f.suffix == ".parquet" and f.name[0] not in "._" and f.is_file()
    )
    if not parts:
        raise InputError(f"folder {p} holds no *.parquet part files")
    return parts


def _comparable(info: FormatInfo) -> tuple[Any, ...]:
    return (info.format_version, info.model, info.dense_dim, info.colbert_dim, info.colbert_type)


def read_info(path: str | os.PathLike[str]) -> FormatInfo:
    """The dataset's :class:`FormatInfo`; for a folder, every part's must agree.

    Raises:
        InputError: not an m3vdb dataset, a part with other metadata or columns.
    """
    pq = _pq()
    first: FormatInfo | None = None
    expected: Any = None
    for part in part_files(path):
        schema = pq.read_schema(str(part))
        info = FormatInfo.from_schema(schema, where=str(part))
        if first is None:
            first, expected = info, arrow_schema(info)
        elif _comparable(info) != _comparable(first):
            raise InputError(
                f"{part} says {info}, the first part says {first}: the parts of one dataset "
                "must come from the same model and settings"
            )
        found = {f.name: f.type for f in schema}
        wrong = [
            f"{f.name} ({found.get(f.name, 'missing')}, expected {f.type})"
            for f in expected
            if found.get(f.name) != f.type
        ]
        if wrong:
            raise InputError(f"{part}: column(s) not as format 1 defines them: {', '.join(wrong)}")
    assert first is not None
    return first


def count_rows(path: str | os.PathLike[str]) -> int:
    """Entries in the dataset (from the files' footers; nothing decoded)."""
    pq = _pq()
    return sum(pq.ParquetFile(str(p)).metadata.num_rows for p in part_files(path))


def read_batches(
    path: str | os.PathLike[str], *, batch_size: int = 256
) -> Iterator[list[tuple[Document, M3Embedding]]]:
    """The dataset's entries in batches of at most ``batch_size`` (file order; parts in
    sorted name order), after :func:`read_info` checked every part."""
    if batch_size <= 0:
        raise InputError(f"batch_size must be positive, got {batch_size}")
    read_info(path)
    pq = _pq()
    for part in part_files(path):
        with pq.ParquetFile(str(part)) as file:
            for batch in file.iter_batches(batch_size=batch_size):
                yield list(from_record_batch(batch))
