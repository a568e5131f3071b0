"""Which connector module a target picks, and the install hint when its client is missing."""

from __future__ import annotations

import sys

import pytest

from m3vdb.connectors import connect, registry
from m3vdb.errors import MissingDependencyError
from m3vdb.schemas.spec import IndexSpec

SPEC = IndexSpec(dense_dim=4, colbert_dim=4)


@pytest.mark.parametrize(
    ("target", "client", "extra"),
    [
        ("milvus://localhost:19530", "pymilvus", "milvus"),
        ("milvus-lite:x.db", "pymilvus", "milvus"),
        ("qdrant+memory://", "qdrant_client", "qdrant"),
        ("qdrant://localhost:6333", "qdrant_client", "qdrant"),
        ("elasticsearch://localhost:9200", "elasticsearch", "elasticsearch"),
        ("elasticsearch+https://localhost:9200", "elasticsearch", "elasticsearch"),
    ],
)
def test_missing_client_raises_missing_dependency_with_the_pip_hint(
    monkeypatch: pytest.MonkeyPatch, target: str, client: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, client, None)  # "not installed" for the import system
    hint = rf"pip install 'm3vdb\[{extra}\]'"
    with pytest.raises(MissingDependencyError, match=hint):
        registry.load(target)
    with pytest.raises(MissingDependencyError, match=hint):
        connect(target, collection="c", spec=SPEC)


def test_module_that_imports_a_missing_client_at_import_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ModuleNotFoundError for the client raised while importing the connector module is
    reported as MissingDependencyError too (never as a raw ModuleNotFoundError)."""

    def failing_import(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {'elasticsearch'!r}", name="elasticsearch")

    monkeypatch.setattr(registry.importlib, "import_module", failing_import)
    with pytest.raises(MissingDependencyError, match=r"m3vdb\[elasticsearch\]"):
        registry.load("elasticsearch://localhost:9200")
