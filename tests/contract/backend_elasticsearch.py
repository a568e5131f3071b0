"""Elasticsearch for the contract suite: a real server only (URL or container).

Elasticsearch has no embedded form, so that form is skipped with the reason. NO fake
Elasticsearch stands in for it: without a server, the Elasticsearch backend is not tested.

Server: set ``M3VDB_TEST_ELASTICSEARCH_URL=http://localhost:9200`` to use a running one (e.g.
``docker compose -f docker/compose.yml up -d elasticsearch``); otherwise a Docker engine runs
:data:`IMAGE` (single node, security off) through testcontainers. Either way the factory starts
a trial licence (``POST _license/start_trial``) when the cluster runs Basic, since rrf/linear
retrievers and rank_vectors need Enterprise or trial.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from backends import server_client
from oracles import linear_fusion

from m3vdb.schemas import elasticsearch as es

NAME = "elasticsearch"
CLIENT_PACKAGE = "elasticsearch"
# Pinned: 9.x with rank_vectors, the rrf/linear/rescorer retrievers and sparse_vector
# index_options (pruning off). Keep in step with docker/compose.yml.
IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:9.4.3"
URL_ENV = "M3VDB_TEST_ELASTICSEARCH_URL"
# Dense and MaxSim come back through float32 scores ((1 + dot) / 2 and exp(maxsim / n)):
# ~1e-6. Sparse scores are exact against the reference because the reference models the 9-bit
# storage (stored_sparse_weight below); without that they would differ by up to 0.4 % of each
# stored weight.
SCORE_TOLERANCE = 1e-4


@contextmanager
def embedded(tmp_path: Path) -> Iterator[Any]:
    """Elasticsearch has no embedded engine."""
    pytest.skip(
        "elasticsearch: no embedded form exists (a JVM server only); the container form "
        f"runs it (Docker, or {URL_ENV}=http://HOST:9200)"
    )
    yield  # pragma: no cover


def _ensure_trial(client: Any) -> None:
    licence = client.license.get()["license"]
    if licence["type"] in ("trial", "enterprise") and licence["status"] == "active":
        return
    response = client.license.post_start_trial(acknowledge=True)
    if not response.get("trial_was_started"):
        pytest.fail(
            f"elasticsearch: the cluster runs a {licence['type']} licence and no trial could be "
            f"started ({response.get('error_message', response)}); the contract suite needs "
            "rrf/linear retrievers and rank_vectors (Enterprise or trial)"
        )


def _connect(url: str) -> Any:
    """A client of the server at ``url``, once the cluster is up and runs a trial licence."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=60)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="60s")
        _ensure_trial(client)
    except BaseException:
        client.close()
        raise
    return client


@contextmanager
def _elasticsearch_container() -> Iterator[str]:
    from testcontainers.community.elasticsearch import ElasticSearchContainer

    server = ElasticSearchContainer(IMAGE, mem_limit="2G")
    server.with_env("discovery.type", "single-node")
    server.with_env("ES_JAVA_OPTS", "-Xms1g -Xmx1g")
    server.with_env("xpack.security.enabled", "false")
    with server:
        yield f"http://{server.get_container_host_ip()}:{server.get_exposed_port(server.port)}"


def container() -> AbstractContextManager[Any]:
    """An Elasticsearch server: ``$M3VDB_TEST_ELASTICSEARCH_URL`` or a container of
    :data:`IMAGE`, with a trial licence."""
    return server_client(
        "elasticsearch", URL_ENV, "http://HOST:9200", _connect, _elasticsearch_container
    )


def fuse_weighted(
    dense: Mapping[str, float], sparse: Mapping[str, float], weights: tuple[float, float]
) -> dict[str, float]:
    """The linear retriever (``normalizer: none``): w_d * (1 + dot) / 2 + w_s * sparse, a
    missing signal adding 0 (``tests/oracles.py``)."""
    knn_scores = {i: es.dense_to_es(s) for i, s in dense.items()}
    return linear_fusion([knn_scores, sparse], weights)


def stored_sparse_weight(weight: float) -> float:
    """What a sparse_vector field keeps of a weight: 9 significant bits (the suite's hook)."""
    return es.stored_sparse_weight(weight)
