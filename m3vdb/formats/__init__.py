"""Portable forms of stored embeddings (the m3vdb embedding format on Parquet).

``table``: format version 1 as Arrow (schema, file metadata, batches of stored entries to
Arrow record batches and back); ``parquet``: the streaming writer and reader of datasets (a
file or a folder of part files); ``transfer``: ``encode``, ``load``, ``export`` and ``copy``.
Needs ``pyarrow`` (``pip install 'm3vdb[parquet]'``), imported when a function here first runs.
"""
