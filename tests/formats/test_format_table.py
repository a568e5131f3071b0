"""Format version 1 as Arrow: the schema is as documented and entries round-trip exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m3vdb.errors import InputError
from m3vdb.formats.table import (
    COLUMNS,
    FORMAT_VERSION,
    FormatInfo,
    arrow_schema,
    from_record_batch,
    to_record_batch,
)
from m3vdb.schemas.data import Document, M3Embedding

pa = pytest.importorskip("pyarrow")


def _entries() -> list[tuple[Document, M3Embedding]]:
    rng = np.random.default_rng(0)
    full = M3Embedding(
        dense=rng.standard_normal(8).astype(np.float32),
        sparse={7: 0.5, 3: 0.25},
        colbert=rng.standard_normal((3, 4)).astype(np.float32),
    )
    dense_only = M3Embedding(dense=rng.standard_normal(8).astype(np.float32))
    return [
        (Document("a", "alpha", {"lang": "en", "n": 1, "tags": ["x"]}), full),
        (Document("b#w1", "beta ü", {}), dense_only),
    ]


def test_schema_columns_types_and_metadata() -> None:
    info = FormatInfo(model="BAAI/bge-m3", dense_dim=8, colbert_dim=4, colbert_type="float16")
    schema = arrow_schema(info)
    assert tuple(schema.names) == COLUMNS
    assert schema.field("dense").type == pa.list_(pa.float32())
    assert schema.field("sparse_indices").type == pa.list_(pa.int32())
    assert schema.field("colbert").type == pa.list_(pa.list_(pa.float16()))
    meta = json.loads(schema.metadata[b"m3vdb"])
    assert meta["format_version"] == FORMAT_VERSION
    assert (meta["model"], meta["dense_dim"], meta["colbert_dim"]) == ("BAAI/bge-m3", 8, 4)
    assert meta["colbert_type"] == "float16" and meta["m3vdb_version"]
    assert FormatInfo.from_schema(schema) == info


def test_round_trip_is_exact_in_float32() -> None:
    info = FormatInfo(model=None, dense_dim=8, colbert_dim=4)
    entries = _entries()
    back = list(from_record_batch(to_record_batch(entries, info)))
    assert [d for d, _ in back] == [d for d, _ in entries]
    for (_, want), (_, got) in zip(entries, back, strict=True):
        for name in ("dense", "colbert"):
            w, g = getattr(want, name), getattr(got, name)
            assert (w is None) == (g is None)
            if w is not None:
                np.testing.assert_array_equal(w, g)
        assert want.sparse == got.sparse
    batch = to_record_batch(entries, info)
    assert batch.column("colbert").to_pylist()[1] is None  # not computed -> null


def test_dimension_that_contradicts_the_info_is_refused() -> None:
    with pytest.raises(InputError, match="dense_dim=16"):
        to_record_batch(_entries(), FormatInfo(model=None, dense_dim=16, colbert_dim=4))


def test_schema_without_m3vdb_metadata_is_refused() -> None:
    with pytest.raises(InputError, match="not an m3vdb embedding file"):
        FormatInfo.from_schema(pa.schema([pa.field("id", pa.string())]))
    future = pa.schema([], metadata={b"m3vdb": json.dumps({"format_version": 99}).encode()})
    with pytest.raises(InputError, match="version 99"):
        FormatInfo.from_schema(future)
