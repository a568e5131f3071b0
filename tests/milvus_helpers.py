"""Helpers of the Milvus Lite tests (tests/connectors/test_milvus_*.py): a client wrapper that makes
chosen calls fail (a stand-in for failures that cannot be provoked in a real engine: it
delegates every other call to the real client), synthetic documents, and row counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from m3vdb.connectors import Collection
from m3vdb.connectors import milvus as cm
from m3vdb.schemas import milvus as ms
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.spec import IndexSpec

DIM = 16
SPEC = IndexSpec(dense_dim=DIM, colbert_dim=DIM)


class FlakyClient:
    """Delegates to a MilvusClient; ``fail[(method, collection)]`` makes calls raise."""

    def __init__(self, client: MilvusClient) -> None:
        self._client = client
        self.fail: dict[tuple[str, str], Callable[[], Exception | None]] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            collection = args[0] if args else kwargs.get("collection_name", "")
            make = self.fail.get((name, collection))
            error = make() if make is not None else None
            if error is not None:
                raise error
            return target(*args, **kwargs)

        return call


def _always(error: Exception) -> Callable[[], Exception]:
    return lambda: error


def _fail_times(n: int, error: Exception) -> Callable[[], Exception | None]:
    left = [n]

    def make() -> Exception | None:
        left[0] -= 1
        return error if left[0] >= 0 else None

    return make


def _fail_on_call(n: int, error: Exception) -> Callable[[], Exception | None]:
    seen = [0]

    def make() -> Exception | None:
        seen[0] += 1
        return error if seen[0] == n else None

    return make


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _emb(seed: int, rows: int = 4) -> M3Embedding:
    rng = np.random.default_rng(seed)
    return M3Embedding(
        dense=_unit(rng.normal(size=DIM)),
        sparse={int(t): float(rng.random() + 0.1) for t in rng.choice(40, 5, replace=False)},
        colbert=_unit(rng.normal(size=(rows, DIM))),
    )


def _docs(n: int, seed: int = 0) -> list[tuple[Document, M3Embedding]]:
    return [(Document(f"d{i}", f"text {i}", {"i": i}), _emb(seed * 1000 + i)) for i in range(n)]


def _connector(client: Any, name: str, spec: IndexSpec = SPEC) -> Collection:
    return Collection(
        cm.MilvusEngine(
            client,
            collection=name,
            spec=spec,
            capabilities=ms.MilvusCapabilities.for_lite(),
        )
    )


def _row_count(client: MilvusClient, collection: str, expr: str = "") -> int:
    return int(client.query(collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"])
