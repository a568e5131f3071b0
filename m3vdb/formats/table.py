"""The m3vdb embedding format, version 1, as Arrow: one row per stored entry.

Columns (docs/formats.md is the user-facing description; this module is its definition):

=================  ==========================  =========================================
column             Arrow type                  value
=================  ==========================  =========================================
``id``             string, not null            the entry's id (a window's id for windows)
``text``           string, not null            the stored text
``metadata``       string, not null            a JSON object (the stored metadata)
``dense``          list<float32>               the dense vector; null: not computed
``sparse_indices`` list<int32>                 token ids, ascending; null: not computed
``sparse_values``  list<float32>               their weights; null when indices are null
``colbert``        list<list<float16|float32>> one row per token; null: not computed
=================  ==========================  =========================================

The schema's key-value metadata holds one JSON object under the key ``m3vdb``
(:class:`FormatInfo`): format version, model, dense and ColBERT dimensions, ColBERT element
type, m3vdb version. Pure translation: no I/O here (files are the Parquet module's job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from m3vdb.errors import InputError
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.optional import import_optional

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT_VERSION = 1
METADATA_KEY = b"m3vdb"
COLUMNS = ("id", "text", "metadata", "dense", "sparse_indices", "sparse_values", "colbert")
ColbertType = Literal["float16", "float32"]


def pyarrow() -> Any:
    """``pyarrow``, or a MissingDependencyError naming ``m3vdb[parquet]``."""
    return import_optional(
        "pyarrow", package="pyarrow", extra="parquet", purpose="The m3vdb embedding format"
    )


@dataclass(frozen=True)
class FormatInfo:
    """What a dataset in the format says about itself (the ``m3vdb`` schema metadata).

    Attributes:
        model: the model (checkpoint) the embeddings came from; None when unknown.
        dense_dim: dimension of ``dense`` (None: no entry has a dense vector).
        colbert_dim: dimension of each ``colbert`` row (None: no ColBERT rows).
        colbert_type: element type of the ``colbert`` rows.
        m3vdb_version: the m3vdb that wrote the dataset.
        format_version: always :data:`FORMAT_VERSION` for what this module writes.
        spec: the IndexSpec record (``IndexSpec.to_record``) of the collection the entries
            came from (export, copy) or would go to (encode), so ``load`` rebuilds the same
            collection; None when unknown (``load`` then stores the outputs with a dimension,
            and sparse). Optional: readers of format 1 may ignore it.
    """

    model: str | None
    dense_dim: int | None
    colbert_dim: int | None
    colbert_type: ColbertType = "float32"
    m3vdb_version: str = ""
    format_version: int = FORMAT_VERSION
    spec: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.colbert_type not in ("float16", "float32"):
            raise InputError(
                f"colbert_type must be 'float16' or 'float32', got {self.colbert_type!r}"
            )
        if not self.m3vdb_version:
            from m3vdb import __version__

            object.__setattr__(self, "m3vdb_version", __version__)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_schema(cls, schema: pa.Schema, *, where: str = "the dataset") -> FormatInfo:
        """The info a schema carries.

        Raises:
            InputError: no ``m3vdb`` metadata (not written by m3vdb), an unreadable one, or a
                format version this m3vdb does not read.
        """
        raw = (schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise InputError(
                f"{where} has no 'm3vdb' schema metadata: it is not an m3vdb embedding "
                "file (write one with `m3vdb encode` or `m3vdb export`)"
            )
        try:
            record = json.loads(raw)
            version = int(record.get("format_version", 0))
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: the 'm3vdb' schema metadata is not valid: {exc}") from exc
        if version != FORMAT_VERSION:
            raise InputError(
                f"{where} is m3vdb embedding format version {version}; this m3vdb reads "
                f"version {FORMAT_VERSION} (upgrade m3vdb to read newer files)"
            )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in record.items() if k in known})


def arrow_schema(info: FormatInfo) -> pa.Schema:
    """The Arrow schema of format version 1, with ``info`` as its ``m3vdb`` metadata."""
    pa = pyarrow()
    element = pa.float16() if info.colbert_type == "float16" else pa.float32()
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
            pa.field("dense", pa.list_(pa.float32())),
            pa.field("sparse_indices", pa.list_(pa.int32())),
            pa.field("sparse_values", pa.list_(pa.float32())),
            pa.field("colbert", pa.list_(pa.list_(element))),
        ],
        metadata={METADATA_KEY: info.to_json().encode()},
    )


def to_record_batch(
    entries: Sequence[tuple[Document, M3Embedding]], info: FormatInfo
) -> pa.RecordBatch:
    """Stored entries (a document and its embedding) as one record batch of the format.

    Vector columns are built from numpy buffers (no Python float lists: a 1024-d ColBERT
    entry has ~10^5 floats).

    Raises:
        InputError: an output whose dimension differs from ``info`` (the file would lie).
    """
    pa = pyarrow()
    schema = arrow_schema(info)
    colbert_dtype = np.float16 if info.colbert_type == "float16" else np.float32
    dense = [_dense(emb.dense, info, doc.id) for doc, emb in entries]
    sparse = [_sparse(emb.sparse) for _, emb in entries]
    colbert = [_colbert(emb.colbert, info, doc.id, colbert_dtype) for doc, emb in entries]
    arrays = [
        pa.array([doc.id for doc, _ in entries], type=pa.string()),
        pa.array([doc.text for doc, _ in entries], type=pa.string()),
        pa.array(
            [json.dumps(dict(doc.metadata), ensure_ascii=False) for doc, _ in entries],
            type=pa.string(),
        ),
        _list_array(pa, dense, np.float32),
        _list_array(pa, [k for k, _ in sparse], np.int32),
        _list_array(pa, [v for _, v in sparse], np.float32),
        _nested_list_array(pa, colbert, colbert_dtype),
    ]
    arrays = [a.cast(f.type) if a.type != f.type else a for a, f in zip(arrays, schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)


def _list_array(pa: Any, items: list[np.ndarray | None], dtype: Any) -> Any:
    """list<dtype> from 1-d arrays (None: a null list)."""
    lengths = [0 if x is None else len(x) for x in items]
    present = [x for x in items if x is not None]
    values = np.concatenate(present).astype(dtype) if present else np.zeros(0, dtype)
    mask = pa.array([x is None for x in items], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(_offsets(lengths)), pa.array(values), mask=mask)


def _nested_list_array(pa: Any, items: list[np.ndarray | None], dtype: Any) -> Any:
    """list<list<dtype>> from 2-d arrays (None: a null list)."""
    present = [x for x in items if x is not None]
    row_lengths = [int(x.shape[1]) for x in present for _ in range(x.shape[0])]
    values = (
        np.concatenate([x.reshape(-1) for x in present]).astype(dtype)
        if present
        else np.zeros(0, dtype)
    )
    rows = pa.ListArray.from_arrays(pa.array(_offsets(row_lengths)), pa.array(values))
    lengths = [0 if x is None else int(x.shape[0]) for x in items]
    mask = pa.array([x is None for x in items], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(_offsets(lengths)), rows, mask=mask)


def from_record_batch(batch: pa.RecordBatch | pa.Table) -> Iterator[tuple[Document, M3Embedding]]:
    """The stored entries of a record batch (or table) of the format, in row order; ColBERT
    rows come back as float32 whatever the stored element type."""
    missing = [name for name in COLUMNS if name not in batch.schema.names]
    if missing:
        raise InputError(
            f"not an m3vdb embedding batch: column(s) {', '.join(missing)} missing "
            f"(found {', '.join(batch.schema.names)})"
        )
    ids = batch.column("id").to_pylist()
    texts = batch.column("text").to_pylist()
    metas = batch.column("metadata").to_pylist()
    dense = _lists(_column(batch, "dense"))
    sp_idx = _lists(_column(batch, "sparse_indices"))
    sp_val = _lists(_column(batch, "sparse_values"))
    colbert = _nested_lists(_column(batch, "colbert"))
    for i, doc_id in enumerate(ids):
        metadata = json.loads(metas[i]) if metas[i] else {}
        if not isinstance(metadata, dict):
            raise InputError(f"entry {doc_id!r}: metadata is not a JSON object: {metas[i]!r}")
        sparse = None
        keys, values, vector = sp_idx[i], sp_val[i], dense[i]
        if keys is not None:
            if values is None or len(values) != len(keys):
                raise InputError(
                    f"entry {doc_id!r}: sparse_indices and sparse_values differ in length"
                )
            sparse = {int(k): float(v) for k, v in zip(keys.tolist(), values.tolist())}
        yield (
            Document(id=doc_id, text=texts[i], metadata=metadata),
            M3Embedding(
                dense=None if vector is None else vector.astype(np.float32),
                sparse=sparse,
                colbert=colbert[i],
            ),
        )


def _column(batch: Any, name: str) -> Any:
    column = batch.column(name)
    return column.combine_chunks() if hasattr(column, "combine_chunks") else column


def _lists(column: Any) -> list[np.ndarray | None]:
    """Each list of a list column as a numpy array (a view where Arrow allows), None for
    null."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    return [None if nulls[i] else values[offsets[i] : offsets[i + 1]] for i in range(len(column))]


def _nested_lists(column: Any) -> list[np.ndarray | None]:
    """Each list of rows of a list<list> column as a float32 ``(rows, dim)`` array."""
    offsets = column.offsets.to_numpy()
    rows = column.values
    row_offsets = rows.offsets.to_numpy()
    values = rows.values.to_numpy(zero_copy_only=False)
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    out: list[np.ndarray | None] = []
    for i in range(len(column)):
        if nulls[i]:
            out.append(None)
            continue
        first, last = int(offsets[i]), int(offsets[i + 1])
        flat = values[row_offsets[first] : row_offsets[last]].astype(np.float32)
        out.append(flat.reshape(last - first, -1) if last > first else flat.reshape(0, 0))
    return out


def _dense(vector: Any, info: FormatInfo, doc_id: str) -> np.ndarray | None:
    if vector is None:
        return None
    arr = np.asarray(vector, dtype=np.float32)
    if info.dense_dim is None or arr.shape != (info.dense_dim,):
        raise InputError(
            f"entry {doc_id!r}: dense vector of shape {arr.shape}, the file declares "
            f"dense_dim={info.dense_dim}"
        )
    return arr


def _sparse(weights: dict[int, float] | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    if weights is None:
        return None, None
    keys = sorted(weights)
    return (
        np.asarray(keys, dtype=np.int32),
        np.asarray([float(weights[k]) for k in keys], dtype=np.float32),
    )


def _colbert(rows: Any, info: FormatInfo, doc_id: str, dtype: Any) -> np.ndarray | None:
    if rows is None:
        return None
    arr = np.asarray(rows, dtype=np.float32)
    if arr.ndim != 2 or info.colbert_dim is None or arr.shape[1] != info.colbert_dim:
        raise InputError(
            f"entry {doc_id!r}: ColBERT rows of shape {arr.shape}, the file declares "
            f"colbert_dim={info.colbert_dim}"
        )
    return arr.astype(dtype)
