"""Backend options: what a connector needs beyond the portable ``IndexSpec`` (client
settings, database-specific index and query settings). Pure data; ``m3vdb.connect(target,
options=...)`` checks that the options match the backend the target picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from m3vdb.errors import InputError

DenseIndexType = Literal[
    "hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat"
]
MAX_NUM_CANDIDATES = 10_000  # knn num_candidates upper bound


@dataclass(frozen=True)
class MilvusOptions:
    """Milvus client settings, used when m3vdb creates the client from a URL.

    Attributes:
        token: ``USER:PASSWORD`` or an API key (Zilliz Cloud); None: the URL's user/password.
        db_name: the Milvus database (None: ``default``).
        timeout: seconds per call (None: pymilvus's default).
    """

    database: ClassVar[str] = "Milvus"

    token: str | None = None
    db_name: str | None = None
    timeout: float | None = None

    def client_settings(self) -> bool:
        """Whether any client setting differs from the default."""
        return self != MilvusOptions()


@dataclass(frozen=True)
class QdrantOptions:
    """Qdrant client settings, used when m3vdb creates the client from a server URL.

    Attributes:
        api_key: the server's API key.
        timeout: seconds per REST call (None: qdrant-client's default).
        prefer_grpc: talk gRPC (port 6334) instead of REST.
    """

    database: ClassVar[str] = "Qdrant"

    api_key: str | None = None
    timeout: int | None = None
    prefer_grpc: bool = False

    def client_settings(self) -> bool:
        """Whether any client setting differs from the default."""
        return self != QdrantOptions()


@dataclass(frozen=True)
class ElasticsearchOptions:
    """Elasticsearch-specific settings of a connector (the IndexSpec stays portable).

    Attributes:
        dense_index_type: ``index_options.type`` of the dense field. ``hnsw`` (default) keeps
            float vectors in the graph, so knn scores are the exact float dot product and equal
            the reference; ``int8_hnsw`` quarters the graph's memory at a small score error
            (set ``rescore_oversample`` to rescore with the float vectors); ``bbq_*`` is 1-bit.
        hnsw_m: HNSW ``m`` (None: Elasticsearch's default, 16).
        hnsw_ef_construction: HNSW ``ef_construction`` (None: default, 100).
        rescore_oversample: for quantized types, rescore ``k * oversample`` knn results with
            the float vectors (``rescore_vector.oversample``); None: off.
        num_candidates: knn ``num_candidates`` (None: ``max(2 * k, 100)``, capped at 10,000).
        sparse_prune: let Elasticsearch prune query tokens (faster, approximate scores). Off by
            default so that sparse scores equal the reference lexical score.
        bm25: add BM25 over the stored text as a third hybrid signal (text queries only).
        bm25_weight: its weight for ``fusion="weighted"``.
        text_analyzer: analyzer of the text field (None: ``standard``).
        refresh: ``refresh`` of writes: ``"wait_for"`` (default: a search after ``upsert`` or
            ``delete`` sees it), True (refresh now), False (fastest bulk loads; call
            ``connector.refresh()`` before searching).
        number_of_shards: shards of a new index.
        number_of_replicas: replicas of a new index (None: the cluster's default).
        max_retries: retries of transient failures (429, 5xx, connection) with backoff.
    """

    database: ClassVar[str] = "Elasticsearch"

    dense_index_type: DenseIndexType = "hnsw"
    hnsw_m: int | None = None
    hnsw_ef_construction: int | None = None
    rescore_oversample: float | None = None
    num_candidates: int | None = None
    sparse_prune: bool = False
    bm25: bool = False
    bm25_weight: float = 0.5
    text_analyzer: str | None = None
    refresh: bool | Literal["wait_for"] = "wait_for"
    number_of_shards: int = 1
    number_of_replicas: int | None = None
    max_retries: int = 5

    def num_candidates_for(self, k: int) -> int:
        wanted = self.num_candidates if self.num_candidates is not None else max(2 * k, 100)
        return min(MAX_NUM_CANDIDATES, max(k, wanted))


@dataclass(frozen=True)
class QdrantEdgeOptions:
    """Settings of an embedded Qdrant edge shard (``qdrant+edge:PATH``) that m3vdb opens.

    Index settings apply when m3vdb CREATES a shard (an existing shard keeps its own);
    ``max_search_threads`` applies on every open. A shard passed in as an ``EdgeShard`` keeps
    all of its own settings: leave options out.

    Attributes:
        dense_hnsw_m: HNSW ``m`` of the dense vector (None: Qdrant's default, 16). The graph is
            built by ``QdrantEdgeConnector.optimize()``; before that, search is exact.
        dense_hnsw_ef_construct: HNSW ``ef_construct`` of the dense vector (None: 100).
        max_search_threads: threads of the shard's search pool (None: one per CPU).
    """

    database: ClassVar[str] = "Qdrant edge"

    dense_hnsw_m: int | None = None
    dense_hnsw_ef_construct: int | None = None
    max_search_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("dense_hnsw_m", "dense_hnsw_ef_construct", "max_search_threads"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
            if value < (0 if name == "dense_hnsw_m" else 1):
                raise InputError(f"{name} must be positive (dense_hnsw_m: >= 0), got {value}")

    def client_settings(self) -> bool:
        """Whether any setting differs from the default."""
        return self != QdrantEdgeOptions()


BackendOptions = MilvusOptions | QdrantOptions | ElasticsearchOptions | QdrantEdgeOptions
