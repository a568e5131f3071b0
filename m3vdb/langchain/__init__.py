"""A LangChain ``VectorStore`` over any m3vdb connector (Milvus, Qdrant, Elasticsearch).

Needs the optional extra: ``pip install 'm3vdb[langchain]'``. The core packages
(``encoder``, ``connectors``, ``schemas``) never import LangChain.
"""

from __future__ import annotations

from m3vdb.langchain.embeddings import M3Embeddings
from m3vdb.langchain.vectorstore import M3VectorStore

__all__ = ["M3Embeddings", "M3VectorStore"]
