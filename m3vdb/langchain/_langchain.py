"""The one place that imports langchain-core, so that a missing install says what to run."""

from __future__ import annotations

from m3vdb.schemas.errors import MissingDependencyError

try:
    from langchain_core.documents import Document as LCDocument
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("langchain-core", "langchain", "m3vdb.langchain") from exc

__all__ = ["Embeddings", "LCDocument", "VectorStore"]
