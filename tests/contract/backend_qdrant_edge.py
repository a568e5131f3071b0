"""Qdrant edge for the contract suite: Qdrant's Rust engine embedded in this process
(``qdrant-edge-py``), one shard folder per collection under a fresh folder.

Qdrant edge has no server form (a Qdrant server is ``backend_qdrant``'s container form), so no
container case is generated. The weighted fusion is the qdrant-client connector's formula (the
same engine and the same query).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backend_qdrant import fuse_weighted
from backends import BackendDescription


@contextmanager
def embedded(tmp_path: Path) -> Iterator[Any]:
    """``qdrant+edge:<tmp_path>``: every collection a shard folder ``<tmp_path>/<name>``."""
    yield f"qdrant+edge:{tmp_path}"


BACKEND = BackendDescription(
    name="qdrant-edge",
    client_package="qdrant_edge",
    embedded=embedded,
    container=None,  # embedded only: the Qdrant server is backend_qdrant's container form
    fuse_weighted=fuse_weighted,
    # float32 engine: scores equal float64 numpy to ~1e-6.
    score_tolerance=1e-4,
)
