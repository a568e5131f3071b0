"""The one place that imports haystack-ai, so that a missing install says what to run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from m3vdb.schemas.optional import import_optional

if TYPE_CHECKING:
    from haystack import Document as HDocument
    from haystack import component, default_from_dict, default_to_dict
    from haystack.dataclasses import SparseEmbedding
    from haystack.document_stores.errors import DuplicateDocumentError
    from haystack.document_stores.types import DuplicatePolicy
    from haystack.errors import FilterError
    from haystack.utils.filters import document_matches_filter
else:
    _HINT = {"package": "haystack-ai", "extra": "haystack", "purpose": "m3vdb.haystack"}
    _haystack = import_optional("haystack", **_HINT)
    HDocument = _haystack.Document
    component = _haystack.component
    default_from_dict = _haystack.default_from_dict
    default_to_dict = _haystack.default_to_dict
    SparseEmbedding = import_optional("haystack.dataclasses", **_HINT).SparseEmbedding
    DuplicateDocumentError = import_optional(
        "haystack.document_stores.errors", **_HINT
    ).DuplicateDocumentError
    DuplicatePolicy = import_optional("haystack.document_stores.types", **_HINT).DuplicatePolicy
    FilterError = import_optional("haystack.errors", **_HINT).FilterError
    document_matches_filter = import_optional(
        "haystack.utils.filters", **_HINT
    ).document_matches_filter

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
