"""Milvus connector: BGE-M3's dense, sparse and ColBERT outputs in Milvus's native fields,
queried through pymilvus's ``MilvusClient`` (Milvus Lite files or Milvus servers).

Targets accepted by :meth:`MilvusEngine.open` (and ``m3vdb.connect``): a
``pymilvus.MilvusClient``, ``milvus-lite:PATH.db`` or a bare ``PATH.db`` (Milvus Lite),
``milvus://[USER:PASSWORD@]HOST[:PORT]`` and ``milvus+https://...`` (a server, default port
19530).

What runs where (see ``schemas.milvus`` for the collection layout):

- ``dense`` / ``sparse``: one ``search`` request with the filter expression.
- ``hybrid``: one ``hybrid_search`` with a dense and a sparse ``AnnSearchRequest``, each carrying
  the filter, fused by ``RRFRanker(k)`` or ``WeightedRanker(w_dense, w_sparse)`` in Milvus. With
  ``rerank`` and ColBERT stored, the fused candidates are reranked by MaxSim: on the ``struct``
  layout by a second ``search`` on ``colbert[vec]`` (metric ``MAX_SIM_IP``) restricted to the
  candidates' ids; on the ``companion`` layout by ONE query of the companion collection for the
  candidates' rows and MaxSim in numpy (exact: the sum over query rows of the best dot product).
- ``colbert``: on ``struct``, one ``search`` with the query rows as an ``EmbeddingList``; on
  ``companion``, candidate generation by one multi-vector ``search`` of the companion (every
  query row finds its nearest token rows) followed by the filter on the candidates' main
  entities and exact MaxSim over their rows. Candidate generation is approximate (like
  ColBERT's own PLAID), the final scores are exact.

Modules: ``client`` (pymilvus import, clients from URLs, capabilities, errors), ``store`` (the
opened collection the parts share), ``colbert`` (one strategy class per ColBERT layout, and the
companion layout's write protocol), ``engine`` (:class:`MilvusEngine`).
"""

from __future__ import annotations

from m3vdb.connectors.milvus.client import (
    DEFAULT_PORT,
    detect_capabilities,
    import_pymilvus,
    is_transient,
    translate_error,
)
from m3vdb.connectors.milvus.engine import MilvusEngine
from m3vdb.schemas.milvus import MilvusCapabilities

__all__ = [
    "DEFAULT_PORT",
    "MilvusCapabilities",
    "MilvusEngine",
    "detect_capabilities",
    "import_pymilvus",
    "is_transient",
    "translate_error",
]
