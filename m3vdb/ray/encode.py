"""The Ray Data encoding step: a class UDF holding one encoder per actor, and a driver-side
Parquet writer that never holds more than one batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from m3vdb.formats.table import FormatInfo, arrow_schema, pyarrow, to_record_batch
from m3vdb.indexing.chunking import DEFAULT_CHUNKING, Chunking, check_chunking, content_hash
from m3vdb.indexing.pipeline import encode_entries
from m3vdb.schemas.data import Document
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.spec import IndexSpec


def _ray() -> Any:
    return import_optional("ray", package="ray[data]", extra="ray", purpose="Encoding on Ray")


class EncodeBatches:
    """The class UDF: loads the encoder once per actor, encodes a batch of documents into
    stored entries (windows as ``m3vdb.index`` makes them) as a format-v1 record batch."""

    def __init__(
        self,
        model: str,
        *,
        chunking: Chunking | None,
        dense: bool,
        sparse: bool,
        colbert: bool,
        device: str | None,
        dtype: str | None,
    ) -> None:
        from m3vdb.encoder import M3Encoder

        self.encoder = M3Encoder(model, device=device, dtype=dtype or "auto")  # type: ignore[arg-type]
        self.spec = IndexSpec.for_encoder(self.encoder, dense=dense, sparse=sparse, colbert=colbert)
        self.chunking = chunking
        # the entry capacity m3vdb.indexing.chunking.entry_capacity gives for this spec
        self.capacity = int(self.encoder.max_length)
        if self.spec.colbert:
            self.capacity = min(self.capacity, self.spec.max_colbert_rows + 1)
        check_chunking(chunking, self.capacity)
        self.info = FormatInfo(
            model=str(model),
            dense_dim=self.encoder.dense_dim if dense else None,
            colbert_dim=self.encoder.colbert_dim if colbert else None,
        )

    def __call__(self, batch: Any) -> Any:
        docs = [
            Document(str(i), str(t), json.loads(m) if isinstance(m, str) else dict(m or {}))
            for i, t, m in zip(
                batch.column("id").to_pylist(),
                batch.column("text").to_pylist(),
                batch.column("metadata").to_pylist(),
            )
        ]
        todo = [d for d in docs if d.text.strip()]  # blank text: nothing to store (as index)
        hashes = {d.id: content_hash(d, self.chunking) for d in todo}
        pairs, _, _, _ = encode_entries(
            self.encoder, todo, hashes, self.chunking, self.capacity, self.spec
        )
        return pyarrow().Table.from_batches([to_record_batch(pairs, self.info)])


def encode_dataset(
    ds: Any,
    *,
    model: str,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    concurrency: int = 1,
    num_gpus: float = 0,
    batch_size: int = 32,
    dense: bool = True,
    sparse: bool = True,
    colbert: bool = True,
    device: str | None = None,
    dtype: str | None = None,
) -> Any:
    """A Dataset of documents (columns ``id``, ``text``, ``metadata``: a JSON string or a
    dict) as a Dataset of stored entries in the m3vdb embedding format v1.

    Args:
        ds: a ``ray.data.Dataset``.
        model: the checkpoint every actor loads (a path every worker can read, or a hub id).
        chunking: the windows of long documents, as ``m3vdb.index``.
        concurrency: encoder actors.
        num_gpus: GPUs per actor (0 on CPU machines).
        batch_size: documents per encode call.
        dense, sparse, colbert: the outputs to compute.
    """
    _ray()
    return ds.map_batches(
        EncodeBatches,
        fn_constructor_kwargs=dict(
            model=str(model),
            chunking=chunking,
            dense=dense,
            sparse=sparse,
            colbert=colbert,
            device=device,
            dtype=dtype,
        ),
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=concurrency,
        num_gpus=num_gpus,
    )


def iter_record_batches(ds: Any) -> Iterator[Any]:
    """The Dataset's record batches on the driver, one at a time (memory bounded by a
    batch)."""
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield from table.to_batches()


def write_parquet_parts(
    ds: Any, out: str | Path, info: FormatInfo, *, rows_per_part: int = 10_000
) -> int:
    """Writes an encoded Dataset as a folder of ``part-NNNNN.parquet`` files with the
    format's schema, streamed through the driver; returns the number of entries."""
    import pyarrow.parquet as pq

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema(info)
    writer: Any = None
    part = rows = in_part = 0
    try:
        for batch in iter_record_batches(ds):
            if writer is None or in_part >= rows_per_part:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(folder / f"part-{part:05d}.parquet", schema)
                part += 1
                in_part = 0
            writer.write_batch(batch.cast(schema) if hasattr(batch, "cast") else batch)
            rows += batch.num_rows
            in_part += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
