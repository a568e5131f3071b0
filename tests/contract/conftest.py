"""Fixtures of the ONE contract suite, run against every backend of ``backends.py``.

- ``backend`` (function scope): a :class:`ContractBackend` for one backend; every
  collection it opens gets a fresh name and is dropped at teardown.
- ``corpus``: the deterministic multilingual corpus with its synthetic embeddings.
- ``corpus_store`` (session scope per backend): the corpus loaded once into one collection
  that the read-only search tests share (loading it per test would multiply the suite's
  time by the number of searches); dropped at the end of the session. Tests that write
  use ``backend.open(...)`` instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import backends
import contract_data
import pytest
from contract_data import DIM, Corpus, SyntheticEncoder, build_corpus

from m3vdb.connectors import Connector, connect
from m3vdb.schemas.spec import IndexSpec, MetadataField

METADATA_FIELDS = (
    MetadataField("lang", "keyword"),
    MetadataField("year", "int"),
    MetadataField("rating", "float"),
    MetadataField("tag", "keyword"),
    MetadataField("public", "bool"),
)


def corpus_spec(**overrides: Any) -> IndexSpec:
    """The suite's IndexSpec: all three outputs at the synthetic dimension, metadata indexed."""
    options: dict[str, Any] = {
        "dense_dim": DIM,
        "colbert_dim": DIM,
        "metadata_fields": METADATA_FIELDS,
    }
    options.update(overrides)
    return IndexSpec(**options)


@dataclass(frozen=True)
class BackendTarget:
    """A started backend: the factory module and the target ``connect`` accepts."""

    id: str
    factory: ModuleType
    target: Any


@dataclass
class ContractBackend:
    """One backend for one test: opens connectors on fresh collections, drops them after."""

    started: BackendTarget
    _opened: dict[str, Connector] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.started.factory.NAME)

    @property
    def factory(self) -> ModuleType:
        return self.started.factory

    @property
    def tolerance(self) -> float:
        return float(self.started.factory.SCORE_TOLERANCE)

    def fresh_name(self) -> str:
        return f"m3vdb_test_{uuid.uuid4().hex[:16]}"

    def open(
        self,
        spec: IndexSpec | None = None,
        *,
        collection: str | None = None,
        encoder: Any = None,
        create: bool = True,
    ) -> Connector:
        """``connect`` on this backend; a fresh collection unless ``collection`` is given."""
        name = collection or self.fresh_name()
        connector = connect(
            self.started.target,
            collection=name,
            encoder=encoder,
            spec=spec if spec is not None else corpus_spec(),
            create=create,
        )
        self._opened.setdefault(name, connector)
        return connector

    def close(self) -> None:
        """Drops every collection this test opened."""
        for connector in self._opened.values():
            connector.drop()
        self._opened.clear()


@pytest.fixture(scope="session", params=backends.params())
def backend_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendTarget]:
    param: backends.BackendParam = request.param
    factory = backends.load(param.module)
    with ExitStack() as stack:
        if param.form == "embedded":
            target = stack.enter_context(factory.embedded(tmp_path_factory.mktemp(param.id)))
        else:
            target = stack.enter_context(factory.container())
        contract_data.use_stored_sparse_weight(getattr(factory, "stored_sparse_weight", None))
        try:
            yield BackendTarget(param.id, factory, target)
        finally:
            contract_data.use_stored_sparse_weight(None)


@pytest.fixture
def backend(backend_target: BackendTarget) -> Iterator[ContractBackend]:
    contract = ContractBackend(backend_target)
    try:
        yield contract
    finally:
        contract.close()


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    return build_corpus()


@pytest.fixture(scope="session")
def corpus_store(backend_target: BackendTarget, corpus: Corpus) -> Iterator[Connector]:
    """The corpus in one collection per backend, written in several batches."""
    contract = ContractBackend(backend_target)
    connector = contract.open(corpus_spec())
    try:
        written = connector.upsert(corpus.pairs(), batch_size=64)
        assert written == len(corpus.docs)
        yield connector
    finally:
        contract.close()


@pytest.fixture
def synthetic_encoder() -> SyntheticEncoder:
    return SyntheticEncoder()
