"""The Datasink (``m3vdb.ray.sink.CollectionDatasink``): Ray write tasks store encoded blocks
through the connectors, replacing a changed document as a whole, as ``m3vdb index`` does.

It is meant for database servers (every worker reaches them); CI has none, so here the
tasks write into a Qdrant edge folder one at a time (``concurrency=1``), each opening and
closing it, while the driver holds it closed.

Troubleshooting: "already in use" or a lock error means two processes held the folder at
once (the driver must not hold it open during the write).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is missing")

from m3vdb.connectors import connect  # noqa: E402
from m3vdb.formats.transfer import info_for_spec  # noqa: E402
from m3vdb.indexing import Chunking, index  # noqa: E402
from m3vdb.ray import ActorPool, documents_dataset, encode_dataset  # noqa: E402
from m3vdb.ray.sink import CollectionDatasink  # noqa: E402
from m3vdb.schemas.data import Document  # noqa: E402
from m3vdb.schemas.spec import IndexSpec  # noqa: E402


def _docs(words: int) -> list[Document]:
    return [
        Document("a", "the flood in the valley", {"year": 2020}),
        Document("b", " ".join(f"word{i} river" for i in range(words)), {}),
    ]


def _stored(target: str) -> list[tuple[str, str, int]]:
    with connect(target, collection="c", create=False) as store:
        return sorted((d.id, d.text, d.metadata["chunks"]) for d in store.scan())


def test_datasink_replaces_as_index_does(local_ray, tiny_model_dir: Path, tiny_encoder, tmp_path):
    chunking = Chunking(window=32, overlap=8, automatic=False)
    spec = IndexSpec.for_encoder(tiny_encoder)
    sunk, want = f"qdrant+edge:{tmp_path / 'sunk'}", f"qdrant+edge:{tmp_path / 'want'}"
    for target in (sunk, want):  # version 1: b in many windows
        index(_docs(80), target, collection="c", encoder=tiny_encoder, chunking=chunking)
    index(_docs(20), want, collection="c", encoder=tiny_encoder, chunking=chunking)

    info = info_for_spec(spec)
    encoded = encode_dataset(
        documents_dataset(_docs(20), rows_per_block=1),
        model=str(tiny_model_dir),
        info=info,
        chunking=chunking,
        pool=ActorPool(batch_size=1, dtype="float32", device="cpu"),
    )
    sink = CollectionDatasink(sunk, "c", info)
    encoded.write_datasink(sink, concurrency=1)
    assert (sink.report.indexed, sink.report.replaced, sink.report.split) == (2, 2, 1)
    assert _stored(sunk) == _stored(want)
