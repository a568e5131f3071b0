"""The one place that imports langchain-core, so that a missing install says what to run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from m3vdb.schemas.optional import import_optional

if TYPE_CHECKING:
    from langchain_core.documents import Document as LCDocument
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
else:
    _HINT = {"package": "langchain-core", "extra": "langchain", "purpose": "m3vdb.langchain"}
    LCDocument = import_optional("langchain_core.documents", **_HINT).Document
    Embeddings = import_optional("langchain_core.embeddings", **_HINT).Embeddings
    VectorStore = import_optional("langchain_core.vectorstores", **_HINT).VectorStore

__all__ = ["Embeddings", "LCDocument", "VectorStore"]
