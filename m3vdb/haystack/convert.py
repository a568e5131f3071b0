"""Haystack ``Document`` <-> m3vdb ``Document`` / ``M3Embedding`` / ``Hit``."""

from __future__ import annotations

import numpy as np

from m3vdb.haystack._haystack import HDocument, SparseEmbedding
from m3vdb.schemas.data import Document, Hit, M3Embedding


def to_m3(doc: HDocument) -> tuple[Document, M3Embedding]:
    """The text, metadata and whatever embeddings the Haystack document carries.

    Raises:
        ValueError: the document has no text content, or carries a blob (m3vdb stores text).
    """
    if doc.content is None:
        raise ValueError(
            f"Haystack document {doc.id!r} has no text content; M3DocumentStore indexes text: "
            "convert it to text first (e.g. with a converter component)"
        )
    if doc.blob is not None:
        raise ValueError(
            f"Haystack document {doc.id!r} carries a blob, which M3DocumentStore does not "
            "store; drop the blob (keep its text in content) before writing"
        )
    sparse = None
    if doc.sparse_embedding is not None:
        se = doc.sparse_embedding
        sparse = {int(i): float(v) for i, v in zip(se.indices, se.values) if v > 0}
    dense = None if doc.embedding is None else np.asarray(doc.embedding, dtype=np.float32)
    return Document(doc.id, doc.content, dict(doc.meta)), M3Embedding(dense=dense, sparse=sparse)


def from_m3(doc: Document | Hit) -> HDocument:
    """A Haystack document with the stored id, text and metadata (and the score of a hit)."""
    score = doc.score if isinstance(doc, Hit) else None
    return HDocument(id=doc.id, content=doc.text, meta=dict(doc.metadata), score=score)


def sparse_to_haystack(weights: dict[int, float]) -> SparseEmbedding:
    """BGE-M3 lexical weights as a Haystack ``SparseEmbedding`` (indices ascending)."""
    items = sorted(weights.items())
    return SparseEmbedding(indices=[i for i, _ in items], values=[float(w) for _, w in items])


def sparse_from_haystack(sparse: SparseEmbedding) -> dict[int, float]:
    """A Haystack ``SparseEmbedding`` as token id -> weight."""
    return {int(i): float(v) for i, v in zip(sparse.indices, sparse.values)}
