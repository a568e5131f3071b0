"""Portable forms of stored embeddings (the m3vdb embedding format on Parquet).

``table``: format version 1 as Arrow (schema, file metadata, batches of stored entries to
Arrow record batches and back). Needs ``pyarrow`` (``pip install 'm3vdb[parquet]'``),
imported when a function here first runs.
"""
