"""The Ray path (encoder as a class UDF in map_batches, on a local 2-CPU Ray) gives the same
entries as the single-process pipeline: same ids (windows included), dense, sparse, ColBERT,
and the accounting (tokens, unindexable documents) the report needs.

Troubleshooting: a failure here and not in tests/indexing points at m3vdb/ray/encode.py
(EncodeBatches, split_batch); the CLI wiring is tested in test_cli_ray.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from m3vdb.formats.table import from_record_batch  # noqa: E402
from m3vdb.formats.transfer import info_for_spec  # noqa: E402
from m3vdb.indexing.chunking import Chunking, content_hash, entry_capacity  # noqa: E402
from m3vdb.indexing.pipeline import encode_entries  # noqa: E402
from m3vdb.ray import ActorPool, documents_dataset, encode_dataset, iter_tables, split_batch  # noqa: E402
from m3vdb.schemas.data import Document  # noqa: E402
from m3vdb.schemas.spec import IndexSpec  # noqa: E402


def _docs() -> list[Document]:
    long = " ".join(f"word{i} river flood valley" for i in range(60))
    return [
        Document("a", "the flood in the valley", {"year": 2020}),
        Document("b", long, {}),
        Document("c", "a short note about rivers", {"tag": "x"}),
    ]


def test_ray_entries_equal_single_process(local_ray, tiny_model_dir: Path, tiny_encoder):
    chunking = Chunking(window=32, overlap=8, automatic=False)
    docs = _docs()
    spec = IndexSpec.for_encoder(tiny_encoder)
    info = info_for_spec(spec)
    pool = ActorPool(concurrency=1, batch_size=2, dtype="float32", device="cpu")
    encoded = encode_dataset(
        documents_dataset(docs, rows_per_block=2),
        model=str(tiny_model_dir),
        info=info,
        chunking=chunking,
        pool=pool,
    )
    got = {}
    tokens = 0
    for table in iter_tables(encoded):
        entries, accounting = split_batch(table, info)
        assert accounting.unindexable == []
        tokens += accounting.tokens
        got.update({d.id: (d, e) for d, e in from_record_batch(entries)})

    want, _, split, want_tokens = encode_entries(
        tiny_encoder,
        docs,
        {d.id: content_hash(d, chunking) for d in docs},
        chunking,
        entry_capacity(spec, tiny_encoder),
        spec,
    )
    assert split == 1 and tokens == want_tokens
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
