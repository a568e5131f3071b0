"""Milvus for the contract suite: Milvus Lite 2.5.x on a file, or a server (URL or container).

Milvus Lite has no Array of Structs, so the embedded form exercises the companion-collection
ColBERT layout; a server >= 2.6.4 (the container's :data:`IMAGE`) exercises the native one.

Server: set ``M3VDB_TEST_MILVUS_URL=http://localhost:19530`` to use a running one (e.g.
``docker compose -f docker/compose.yml up -d milvus``); otherwise a Docker engine runs
:data:`IMAGE` (standalone, embedded etcd, local storage) through testcontainers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from backends import server_client
from oracles import milvus_weighted_fusion

NAME = "milvus"
CLIENT_PACKAGE = "pymilvus"
# Pinned: the first release with Array of Structs and MAX_SIM_IP (the native ColBERT layout).
IMAGE = "milvusdb/milvus:v2.6.4"
URL_ENV = "M3VDB_TEST_MILVUS_URL"
# Milvus computes in float32 (and sums MaxSim over query rows in float32).
SCORE_TOLERANCE = 1e-4
# A range filter matches scalar values only: Milvus has no "some element of a JSON array is in
# range" predicate (schemas.milvus.compile_filter).
RANGE_OVER_LISTS = False


@contextmanager
def embedded(tmp_path: Path) -> Iterator[Any]:
    """Milvus Lite (Milvus's C++ engine in a subprocess) on a file under ``tmp_path``."""
    pytest.importorskip("milvus_lite", reason="milvus: milvus-lite is not installed")
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path / "milvus.db"))
    try:
        yield client
    finally:
        client.close()


@contextmanager
def _milvus_container() -> Iterator[str]:
    from testcontainers.community.milvus import MilvusContainer

    with MilvusContainer(IMAGE) as server:
        yield server.get_connection_url()


def container() -> AbstractContextManager[Any]:
    """A Milvus server: ``$M3VDB_TEST_MILVUS_URL`` or a container of :data:`IMAGE`."""
    from pymilvus import MilvusClient

    return server_client(
        "milvus", URL_ENV, "http://HOST:19530", lambda url: MilvusClient(uri=url), _milvus_container
    )


def fuse_weighted(
    dense: Mapping[str, float], sparse: Mapping[str, float], weights: tuple[float, float]
) -> dict[str, float]:
    """Milvus's WeightedRanker (norm_score=True) on IP scores:
    w_d * (0.5 + atan(dense) / pi) + w_s * (0.5 + atan(sparse) / pi), a missing signal adding 0
    (``tests/oracles.py``)."""
    fused = milvus_weighted_fusion([dense, sparse], weights, ["IP", "IP"])
    return dict(fused)
