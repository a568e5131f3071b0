"""Encoding on Ray Data: the encoder as a class UDF in ``map_batches`` (an actor pool), its
output the m3vdb embedding format v1 as Arrow record batches (``m3vdb/formats/table.py``).

``encode_dataset`` turns a Dataset of documents (``id``, ``text``, ``metadata``) into one of
stored entries (long documents as the same windows and ids ``m3vdb.index`` writes);
``write_parquet_parts`` streams such a Dataset to the driver, one batch at a time, and writes
part files with the format's schema. Needs ``pip install 'm3vdb[ray]'``; ``import m3vdb``
never imports ray.
"""

from __future__ import annotations

from m3vdb.ray.encode import encode_dataset, write_parquet_parts

__all__ = ["encode_dataset", "write_parquet_parts"]
