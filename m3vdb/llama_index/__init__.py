"""LlamaIndex integration: ``M3VectorStore`` (a ``BasePydanticVectorStore`` over any m3vdb
connector: dense, sparse and hybrid queries with fusion and ColBERT rerank in the database)
and ``M3EmbedModel`` (BGE-M3's dense vector for ``Settings.embed_model``, sharing the store's
encoder).

Needs the optional extra: ``pip install 'm3vdb[llama-index]'``. ``import m3vdb`` never imports
LlamaIndex.
"""

from __future__ import annotations

from m3vdb.llama_index.embeddings import M3EmbedModel
from m3vdb.llama_index.vector_store import M3VectorStore

__all__ = ["M3EmbedModel", "M3VectorStore"]
