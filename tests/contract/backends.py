"""The backends the contract suite runs against, and what a backend factory provides.

A backend factory is one module in this folder, ``backend_<database>.py``, listed in
:data:`FACTORY_MODULES`. It exposes:

``NAME: str``
    The database ("qdrant", "milvus").
``CLIENT_PACKAGE: str``
    Import name of the database client; without it the backend is skipped with the reason.
``embedded(tmp_path: pathlib.Path) -> ContextManager[target]``
    The embedded engine (no server). ``target`` is what ``connectors.connect`` accepts: a
    native client object (preferred: reopening a collection must see the same data) or a
    URL. ``tmp_path`` is a fresh folder for files the engine writes.
``container() -> ContextManager[target]``
    A real server: the URL in the factory's environment variable
    (``M3VDB_TEST_<NAME>_URL``) when set, else a testcontainers container with a PINNED
    image tag. Calls ``pytest.skip(reason)`` when neither is available; use
    :func:`docker_unavailable_reason` (it probes Docker only when called: never at import).
``fuse_weighted(dense, sparse, weights) -> dict[str, float]``
    The database's documented ``fusion="weighted"`` formula, the numpy reference for it:
    ``dense`` and ``sparse`` map doc id -> raw score of each signal's candidate list (the
    top ``HybridOptions.candidate_count(k)`` after the filter); ``weights`` is
    ``HybridOptions.weights``. Returns doc id -> fused score for every candidate.
``SCORE_TOLERANCE: float``
    Absolute tolerance of the database's dense/sparse/MaxSim scores against float64 numpy
    (float32 engines: ~1e-4; a database that rounds stored weights needs more).
``stored_sparse_weight(w: float) -> float`` (optional)
    What the database keeps of a stored sparse weight, when it keeps less than float32
    (Elasticsearch: 9 significant bits); the sparse reference then scores with it, so that
    rankings compare exactly instead of within a rounding-sized tolerance.
``RANGE_OVER_LISTS: bool`` (optional, default True)
    False when the database cannot match a range against the elements of a list value (Milvus):
    the suite then expects such ranges to match scalar values only, the documented limitation.

Every backend implements the RRF of ``connectors.base``: sum of 1 / (rrf_k + rank), rank
1-based, so the suite holds that reference itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

FACTORY_MODULES: tuple[str, ...] = ("backend_qdrant", "backend_milvus", "backend_elasticsearch")
FORMS: tuple[str, ...] = ("embedded", "container")


@dataclass(frozen=True)
class BackendParam:
    """One (factory module, form) pair: a parameter of the ``backend`` fixture."""

    module: str
    form: str

    @property
    def id(self) -> str:
        return f"{self.module.removeprefix('backend_')}-{self.form}"


def params(modules: tuple[str, ...] = FACTORY_MODULES) -> list[pytest.ParameterSet]:
    """pytest params for every factory and form; container forms carry ``integration``."""
    out = []
    for module in modules:
        for form in FORMS:
            marks = [pytest.mark.integration] if form == "container" else []
            param = BackendParam(module, form)
            out.append(pytest.param(param, id=param.id, marks=marks))
    return out


def load(module: str) -> ModuleType:
    """Imports a factory module; skips (with the reason) when it or its client is absent."""
    try:
        factory = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # the factory exists but is broken: that must fail, not skip
        pytest.skip(f"tests/contract/{module}.py is not written yet")
    pytest.importorskip(
        factory.CLIENT_PACKAGE, reason=f"{factory.NAME}: {factory.CLIENT_PACKAGE} is not installed"
    )
    return factory


def docker_unavailable_reason() -> str | None:
    """None when testcontainers is installed and a Docker engine answers; else why not."""
    try:
        import testcontainers  # noqa: F401

        import docker
    except ImportError as exc:
        return f"testcontainers is not installed ({exc}); run: pip install 'm3vdb[test]'"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # any failure means: no engine to run containers on
        return f"no Docker engine answered ({type(exc).__name__}: {exc})"
    return None


@contextmanager
def server_client(
    name: str,
    url_env: str,
    example_url: str,
    connect: Callable[[str], Any],
    start_container: Callable[[], AbstractContextManager[str]],
) -> Iterator[Any]:
    """The client of a real server, what every factory's ``container()`` yields.

    The server is the one at ``$url_env`` when set; else a container that
    ``start_container`` runs (yielding its URL), when a Docker engine answers; else the test
    is skipped with the reason. ``connect(url)`` makes the client; it is closed at the end.
    """
    with ExitStack() as stack:
        url = os.environ.get(url_env)
        if not url:
            reason = docker_unavailable_reason()
            if reason is not None:
                pytest.skip(f"{name} server: {reason}; or set {url_env}={example_url}")
            url = stack.enter_context(start_container())
        client = connect(url)
        try:
            yield client
        finally:
            client.close()
