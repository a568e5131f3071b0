"""Qdrant, once: one layout (``m3vdb.schemas.qdrant``: named vectors, payload, point ids,
filters) and one query plan (:mod:`.layout`), with two engines over it:

- :class:`~m3vdb.connectors.qdrant.client.QdrantEngine` over ``qdrant-client`` (a server, or
  local mode in memory or in a folder);
- :class:`~m3vdb.connectors.qdrant.edge.QdrantEdgeEngine` over ``qdrant-edge-py`` (Qdrant's
  Rust engine in this process).

Importing this package imports neither client.
"""

from __future__ import annotations

__all__: list[str] = []
