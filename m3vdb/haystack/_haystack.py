"""The one place that imports haystack-ai, so that a missing install says what to run."""

from __future__ import annotations

from m3vdb.schemas.errors import MissingDependencyError

try:
    from haystack import Document as HDocument
    from haystack import component, default_from_dict, default_to_dict
    from haystack.dataclasses import SparseEmbedding
    from haystack.document_stores.errors import DuplicateDocumentError
    from haystack.document_stores.types import DuplicatePolicy
    from haystack.errors import FilterError
    from haystack.utils.filters import document_matches_filter
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("haystack-ai", "haystack", "m3vdb.haystack") from exc

__all__ = [
    "DuplicateDocumentError",
    "DuplicatePolicy",
    "FilterError",
    "HDocument",
    "SparseEmbedding",
    "component",
    "default_from_dict",
    "default_to_dict",
    "document_matches_filter",
]
