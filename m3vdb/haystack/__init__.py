"""Haystack 2.x integration: a ``DocumentStore`` over any m3vdb connector, BGE-M3 embedders
that fill ``embedding`` and ``sparse_embedding`` from one forward pass, and dense, sparse and
hybrid retrievers (fusion and ColBERT rerank in the database).

Needs the optional extra: ``pip install 'm3vdb[haystack]'``. ``import m3vdb`` never imports
Haystack.
"""

from __future__ import annotations

from m3vdb.haystack.document_store import M3DocumentStore
from m3vdb.haystack.embedders import M3DocumentEmbedder, M3TextEmbedder
from m3vdb.haystack.retrievers import (
    M3EmbeddingRetriever,
    M3HybridRetriever,
    M3SparseEmbeddingRetriever,
)

__all__ = [
    "M3DocumentEmbedder",
    "M3DocumentStore",
    "M3EmbeddingRetriever",
    "M3HybridRetriever",
    "M3SparseEmbeddingRetriever",
    "M3TextEmbedder",
]
