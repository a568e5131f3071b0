"""Qdrant for the contract suite: local mode in memory, or a server (URL or container).

Server: set ``M3VDB_TEST_QDRANT_URL=http://localhost:6333`` to use a running one; otherwise a
Docker engine runs :data:`IMAGE` through testcontainers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from backends import BackendDescription, server_client

# Pinned: a server with Rrf(k=...) (1.16+) and FormulaQuery (1.14+).
IMAGE = "qdrant/qdrant:v1.17.1"
URL_ENV = "M3VDB_TEST_QDRANT_URL"


@contextmanager
def embedded(tmp_path: Path) -> Iterator[Any]:
    """Local mode in memory (Qdrant's Python engine: brute force, exact)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    try:
        yield client
    finally:
        client.close()


@contextmanager
def _qdrant_container() -> Iterator[str]:
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(IMAGE) as server:
        yield f"http://{server.rest_host_address}"


def container() -> AbstractContextManager[Any]:
    """A Qdrant server: ``$M3VDB_TEST_QDRANT_URL`` or a container of :data:`IMAGE`."""
    from qdrant_client import QdrantClient

    return server_client(
        "qdrant", URL_ENV, "http://HOST:6333", lambda url: QdrantClient(url=url), _qdrant_container
    )


def fuse_weighted(
    dense: Mapping[str, float], sparse: Mapping[str, float], weights: tuple[float, float]
) -> dict[str, float]:
    """The connector's FormulaQuery: w_d * dense + w_s * sparse, 0 for a missing signal."""
    ids = set(dense) | set(sparse)
    return {i: weights[0] * dense.get(i, 0.0) + weights[1] * sparse.get(i, 0.0) for i in ids}


BACKEND = BackendDescription(
    name="qdrant",
    client_package="qdrant_client",
    embedded=embedded,
    container=container,
    fuse_weighted=fuse_weighted,
    score_tolerance=1e-4,
)
