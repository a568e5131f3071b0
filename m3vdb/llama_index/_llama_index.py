"""The one place that imports llama-index-core, so that a missing install says what to run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from m3vdb.schemas.optional import import_optional

if TYPE_CHECKING:
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
else:
    _HINT = {"package": "llama-index-core", "extra": "llama-index", "purpose": "m3vdb.llama_index"}
    BaseEmbedding = import_optional("llama_index.core.base.embeddings.base", **_HINT).BaseEmbedding
    PrivateAttr = import_optional("llama_index.core.bridge.pydantic", **_HINT).PrivateAttr
    _schema = import_optional("llama_index.core.schema", **_HINT)
    BaseNode, MetadataMode = _schema.BaseNode, _schema.MetadataMode
    _types = import_optional("llama_index.core.vector_stores.types", **_HINT)
    BasePydanticVectorStore = _types.BasePydanticVectorStore
    ExactMatchFilter = _types.ExactMatchFilter
    FilterCondition = _types.FilterCondition
    FilterOperator = _types.FilterOperator
    MetadataFilter = _types.MetadataFilter
    MetadataFilters = _types.MetadataFilters
    VectorStoreQuery = _types.VectorStoreQuery
    VectorStoreQueryMode = _types.VectorStoreQueryMode
    VectorStoreQueryResult = _types.VectorStoreQueryResult
    _utils = import_optional("llama_index.core.vector_stores.utils", **_HINT)
    metadata_dict_to_node = _utils.metadata_dict_to_node
    node_to_metadata_dict = _utils.node_to_metadata_dict

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
