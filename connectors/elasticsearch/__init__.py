"""Elasticsearch: BGE-M3's outputs as ``dense_vector``, ``sparse_vector`` and ``rank_vectors``
fields of one document, queried in one search (see ``connector`` for what runs where).

Modules: ``engine`` (the engine, client creation, errors, capability detection),
``queries`` (request bodies), ``bulk`` (per-document results of bulk writes). The mapping,
documents, filter compiler and score conversions are in ``m3vdb.schemas.elasticsearch``.
"""

from m3vdb.connectors.elasticsearch.bulk import raise_for_bulk_failures
from m3vdb.connectors.elasticsearch.engine import (
    ElasticsearchCollection,
    ElasticsearchEngine,
    client_from_url,
    detect_capabilities,
)
from m3vdb.errors import BulkFailedError, BulkRejectedError, BulkWriteError
from m3vdb.schemas.elasticsearch import ElasticsearchCapabilities
from m3vdb.schemas.options import ElasticsearchOptions

__all__ = [
    "BulkFailedError",
    "BulkRejectedError",
    "BulkWriteError",
    "ElasticsearchCapabilities",
    "ElasticsearchCollection",
    "ElasticsearchEngine",
    "ElasticsearchOptions",
    "client_from_url",
    "detect_capabilities",
    "raise_for_bulk_failures",
]
