"""Encoding on Ray Data: the BGE-M3 encoder as a class UDF in ``map_batches`` (an actor pool:
``concurrency``, ``num_gpus``, documents per call, tokens per forward pass), its output the
m3vdb embedding format v1 as Arrow, written through the driver (Parquet, an embedded engine)
or from the workers by a ``ray.data`` Datasink through the connectors (a database server).

``encode_dataset`` turns a Dataset of documents (``id``, ``text``, ``metadata``) into one of
stored entries (long documents as the windows and ids ``m3vdb.index`` writes);
``index_corpus`` and ``encode_corpus`` are ``m3vdb index --ray`` and ``m3vdb encode --ray``.
Needs ``pip install 'm3vdb[ray]'``; ``import m3vdb`` never imports ray, and neither does
this package until a function runs (the Datasink module imports it: load it only then).
"""

from __future__ import annotations

from m3vdb.ray.encode import (
    ActorPool,
    EncodeBatches,
    documents_dataset,
    encode_dataset,
    iter_tables,
    split_batch,
)
from m3vdb.ray.run import encode_corpus, index_corpus, is_embedded, ray_session

__all__ = [
    "ActorPool",
    "EncodeBatches",
    "documents_dataset",
    "encode_corpus",
    "encode_dataset",
    "index_corpus",
    "is_embedded",
    "iter_tables",
    "ray_session",
    "split_batch",
]
