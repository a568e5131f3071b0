"""The Ray path (encoder as a class UDF in map_batches, on a local 2-CPU Ray) gives the same
entries as the single-process pipeline: same ids (windows included), dense, sparse, ColBERT.

Troubleshooting: Ray start-up takes ~10-30 s on a 2-core machine; one session per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from m3vdb.formats.table import FormatInfo, from_record_batch  # noqa: E402
from m3vdb.indexing.chunking import Chunking, content_hash  # noqa: E402
from m3vdb.indexing.pipeline import encode_entries  # noqa: E402
from m3vdb.ray import encode_dataset, write_parquet_parts  # noqa: E402
from m3vdb.schemas.data import Document  # noqa: E402
from m3vdb.schemas.spec import IndexSpec  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _docs() -> list[Document]:
    long = " ".join(f"word{i} river flood valley" for i in range(60))
    return [
        Document("a", "the flood in the valley", {"year": 2020}),
        Document("b", long, {}),
        Document("c", "a short note about rivers", {"tag": "x"}),
    ]


def test_ray_entries_equal_single_process(local_ray, tiny_model_dir: Path, tiny_encoder, tmp_path):
    chunking = Chunking(window=32, overlap=8, automatic=False)
    docs = _docs()
    rows = [{"id": d.id, "text": d.text, "metadata": json.dumps(d.metadata)} for d in docs]
    ds = encode_dataset(
        ray.data.from_items(rows),
        model=str(tiny_model_dir),
        chunking=chunking,
        concurrency=1,
        batch_size=2,
        dtype="float32",
        device="cpu",
    )
    info = FormatInfo(
        model=str(tiny_model_dir),
        dense_dim=tiny_encoder.dense_dim,
        colbert_dim=tiny_encoder.colbert_dim,
    )
    n = write_parquet_parts(ds, tmp_path / "out", info, rows_per_part=3)
    parts = sorted((tmp_path / "out").glob("*.parquet"))
    assert len(parts) >= 2
    got = {d.id: (d, e) for p in parts for d, e in from_record_batch(pq.read_table(p))}
    assert FormatInfo.from_schema(pq.read_schema(parts[0])) == info

    spec = IndexSpec.for_encoder(tiny_encoder)
    capacity = min(tiny_encoder.max_length, spec.max_colbert_rows + 1)
    want, _, split, _ = encode_entries(
        tiny_encoder,
        docs,
        {d.id: content_hash(d, chunking) for d in docs},
        chunking,
        capacity,
        spec,
    )
    assert split == 1 and n == len(want)
    assert sorted(got) == sorted(d.id for d, _ in want)
    assert any(i.startswith("b#") for i in got)
    for doc, emb in want:
        gdoc, gemb = got[doc.id]
        assert gdoc.text == doc.text and gdoc.metadata == doc.metadata
        np.testing.assert_allclose(gemb.dense, emb.dense, atol=1e-5)
        assert gemb.sparse.keys() == emb.sparse.keys()
        np.testing.assert_allclose(
            [gemb.sparse[k] for k in emb.sparse], list(emb.sparse.values()), atol=1e-5
        )
        np.testing.assert_allclose(gemb.colbert, emb.colbert, atol=1e-5)
