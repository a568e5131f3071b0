"""The backends the contract suite runs against, and the typed description of each.

A backend is one module in this folder, ``backend_<database>.py``, listed in
:data:`BACKEND_MODULES`, that defines ``BACKEND = BackendDescription(...)`` (see
:class:`BackendDescription`). Nothing else is read from the module: a new backend is a new
module plus one description, never a copied test.

Every backend implements the RRF of ``connectors.base``: sum of 1 / (rrf_k + rank), rank
1-based, so the suite holds that reference itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BACKEND_MODULES: tuple[str, ...] = (
    "backend_qdrant",
    "backend_qdrant_edge",
    "backend_milvus",
    "backend_elasticsearch",
)
FORMS: tuple[str, ...] = ("embedded", "container")

WeightedFusion = Callable[[Mapping[str, float], Mapping[str, float], tuple[float, float]], dict]


@dataclass(frozen=True)
class BackendDescription:
    """What the contract suite needs to know about one backend.

    Attributes:
        name: the database ("qdrant", "milvus").
        client_package: import name of the database client; without it the backend is
            skipped with the reason.
        embedded: ``embedded(tmp_path)`` -> context manager of the embedded engine's target
            (what ``m3vdb.connect`` accepts: a native client object, preferred because
            reopening a collection must see the same data, or a URL); ``tmp_path`` is a fresh
            folder for the engine's files. Calls ``pytest.skip(reason)`` when there is none.
        container: ``container()`` -> context manager of a real server's target: the URL in
            the backend's environment variable (``M3VDB_TEST_<NAME>_URL``) when set, else a
            testcontainers container with a PINNED image tag; ``pytest.skip(reason)`` when
            neither is available (see :func:`server_client`). None for an engine that has
            no server form (Qdrant edge): no container case is generated.
        fuse_weighted: the database's documented ``fusion="weighted"`` formula, the numpy
            reference for it: ``dense`` and ``sparse`` map doc id -> raw score of each
            signal's candidate list (the top ``HybridOptions.candidate_count(k)`` after the
            filter); ``weights`` is ``HybridOptions.weights``. Returns doc id -> fused score.
        score_tolerance: absolute tolerance of the database's dense/sparse/MaxSim scores
            against float64 numpy (float32 engines: ~1e-4).
        stored_sparse_weight: what the database keeps of a stored sparse weight when it keeps
            less than float32 (Elasticsearch: 9 significant bits); the sparse reference then
            scores with it. None: float32.
        range_over_lists: False when the database cannot match a range against the elements
            of a list value (Milvus): the suite then expects such ranges to match scalar
            values only, the documented limitation.
    """

    name: str
    client_package: str
    embedded: Callable[[Path], AbstractContextManager[Any]]
    container: Callable[[], AbstractContextManager[Any]] | None
    fuse_weighted: WeightedFusion
    score_tolerance: float
    stored_sparse_weight: Callable[[float], float] | None = None
    range_over_lists: bool = True


@dataclass(frozen=True)
class BackendParam:
    """One (backend module, form) pair: a parameter of the ``backend`` fixture."""

    module: str
    form: str

    @property
    def id(self) -> str:
        return f"{self.module.removeprefix('backend_')}-{self.form}"


def params(modules: tuple[str, ...] = BACKEND_MODULES) -> list[pytest.ParameterSet]:
    """pytest params for every backend and form; container forms carry ``integration``."""
    out = []
    for module in modules:
        for form in FORMS:
            if form == "container" and not _has_server_form(module):
                continue
            marks = [pytest.mark.integration] if form == "container" else []
            param = BackendParam(module, form)
            out.append(pytest.param(param, id=param.id, marks=marks))
    return out


def _has_server_form(module: str) -> bool:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return True  # not written yet: load() skips it with the reason
    return loaded.BACKEND.container is not None


def load(module: str) -> BackendDescription:
    """The description of a backend module; skips (with the reason) when the module or its
    client is absent."""
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # the module exists but is broken: that must fail, not skip
        pytest.skip(f"tests/contract/{module}.py is not written yet")
    backend = loaded.BACKEND
    if not isinstance(backend, BackendDescription):
        raise TypeError(f"{module}.BACKEND must be a BackendDescription, got {backend!r}")
    pytest.importorskip(
        backend.client_package,
        reason=f"{backend.name}: {backend.client_package} is not installed",
    )
    return backend


@contextmanager
def started(backend: BackendDescription, form: str, tmp_path: Path) -> Iterator[Any]:
    """The target of ``backend`` in ``form`` ("embedded" or "container")."""
    if form == "embedded":
        manager = backend.embedded(tmp_path)
    elif backend.container is not None:
        manager = backend.container()
    else:
        pytest.skip(f"{backend.name}: no server form")
    with manager as target:
        yield target


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
    """The client of a real server, what every backend's ``container()`` yields.

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
