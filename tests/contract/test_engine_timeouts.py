"""Every call to an embedded engine is bounded (issue 26 item 8): a call that does not answer
becomes a BackendError within the bound, and the collection then refuses further calls
instead of racing the stuck one; reopened, it works.

A real engine cannot be made to hang on demand, so the native call is replaced by a STAND-IN
that sleeps (named as such below); everything around it (the engine, ``Engine.call``, the
collection) is the real code.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

import m3vdb
from m3vdb import BackendError, IndexSpec

SPEC = IndexSpec(dense_dim=8, colbert_dim=8)


class _StandInShardThatStopsAnswering:
    """Stand-in for an edge shard whose ``count`` never returns (in time)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def count(self, request: Any) -> int:
        time.sleep(3)
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _stall(engine: str, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "qdrant-edge":
        real = store.engine._shard()
        monkeypatch.setattr(store.engine, "_shard", lambda: _StandInShardThatStopsAnswering(real))
    else:

        def stand_in_query_that_stops_answering(*args: Any, **kwargs: Any) -> Any:
            time.sleep(3)
            return [{"count(*)": 0}]

        monkeypatch.setattr(store.client, "query", stand_in_query_that_stops_answering)


@pytest.mark.parametrize(
    ("engine", "package", "target"),
    [
        ("qdrant-edge", "qdrant_edge", "qdrant+edge:{}/edge"),
        ("milvus-lite", "milvus_lite", "milvus-lite:{}/m3vdb.db"),
    ],
)
def test_a_call_that_does_not_answer_is_an_error_within_the_bound(
    engine: str, package: str, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    url = target.format(tmp_path)
    with m3vdb.connect(url, collection="t", spec=SPEC) as store:
        assert store.engine.call_timeout is not None  # embedded: bounded by default
        assert store.count() == 0
        monkeypatch.setattr(store.engine, "call_timeout", 0.3)
        _stall(engine, store, monkeypatch)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"count did not answer within 0.3 s"):
            store.count()
        assert time.monotonic() - started < 2.5  # the bound, not the stand-in's 3 s
        monkeypatch.undo()
        with pytest.raises(BackendError, match="never returned"):
            store.get(["x"])  # refused: it would race the stuck call
        time.sleep(3)  # let the abandoned stand-in finish before the store closes
    with m3vdb.connect(url, collection="t") as store:
        assert store.count() == 0  # reopened, it answers
