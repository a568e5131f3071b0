"""The one place that imports llama-index-core, so that a missing install says what to run."""

from __future__ import annotations

from m3vdb.schemas.errors import MissingDependencyError

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        ExactMatchFilter,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("llama-index-core", "llama-index", "m3vdb.llama_index") from exc

__all__ = [
    "BaseEmbedding",
    "BaseNode",
    "BasePydanticVectorStore",
    "ExactMatchFilter",
    "FilterCondition",
    "FilterOperator",
    "MetadataFilter",
    "MetadataFilters",
    "MetadataMode",
    "PrivateAttr",
    "VectorStoreQuery",
    "VectorStoreQueryMode",
    "VectorStoreQueryResult",
    "metadata_dict_to_node",
    "node_to_metadata_dict",
]
