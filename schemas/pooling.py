"""Token pooling of ColBERT rows at index time (``IndexSpec.colbert_pool_factor``).

The method of Clavié, Chaffin and Adams ("Reducing the Footprint of Multi-Vector Retrieval
with Minimal Performance Impact via Token Pooling", 2024): a document's token vectors are
clustered hierarchically with Ward's criterion into ``rows // factor`` clusters (at least
one); each cluster is stored as the mean of its rows, L2-normalised again as the model
normalises every row. Queries are never pooled: MaxSim then compares each query row with the
cluster centres. Ward on unit vectors: the squared Euclidean distance is ``2 - 2 cos``, so
merging minimises the loss of cosine similarity within clusters.

Pure numpy plus ``scipy.cluster.hierarchy`` (imported when pooling runs: the ``pooling``
extra), applied in ``Collection.upsert``, the one write path every surface takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from m3vdb.errors import InputError
from m3vdb.schemas.optional import import_optional


def _hierarchy() -> Any:
    return import_optional(
        "scipy.cluster.hierarchy",
        package="scipy",
        extra="pooling",
        purpose="Token pooling (IndexSpec.colbert_pool_factor > 1)",
    )


def pooled_row_count(rows: int, factor: int) -> int:
    """How many rows a document of ``rows`` ColBERT rows keeps at ``factor``."""
    if factor <= 1 or rows <= 1:
        return rows
    return max(1, rows // factor)


def pool_rows(rows: np.ndarray, factor: int) -> np.ndarray:
    """``rows`` (n, dim) pooled to ``pooled_row_count(n, factor)`` L2-normalised rows.

    Deterministic (Ward linkage has no randomness); the clusters keep the order of their
    first row. ``factor=1`` (or a single row) returns the rows unchanged.

    Raises:
        InputError: ``rows`` is not a 2-d array or ``factor`` is not an int >= 1.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise InputError(f"the pool factor must be an int >= 1, got {factor!r}")
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise InputError(f"ColBERT rows must be a 2-d array, got shape {rows.shape}")
    n = rows.shape[0]
    keep = pooled_row_count(n, factor)
    if keep == n:
        return rows.astype(np.float32, copy=False)
    hierarchy = _hierarchy()
    data = rows.astype(np.float64)
    linkage = hierarchy.linkage(data, method="ward")
    labels = hierarchy.fcluster(linkage, t=keep, criterion="maxclust")
    # clusters in the order of their first row (fcluster numbers them arbitrarily)
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    pooled = np.stack([data[labels == label].mean(axis=0) for label in order])
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    pooled = pooled / np.maximum(norms, 1e-12)
    return pooled.astype(np.float32)
