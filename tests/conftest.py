"""Session fixtures shared by every test: a tiny BGE-M3-shaped checkpoint built offline and
the real encoder loaded from it through the public loading path (float32: the
reference-equal path the golden and parity tests compare)."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoint_factory import build_checkpoint

from m3vdb.encoder import M3Encoder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BGE-M3-shaped checkpoint (hidden 32, 2 layers, 8192 positions), deterministic."""
    return build_checkpoint(tmp_path_factory.mktemp("tiny-bge-m3"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path) -> M3Encoder:
    """``M3Encoder`` on the tiny checkpoint, CPU, float32 (shared: it holds no state that a
    test can change)."""
    return M3Encoder(tiny_model_dir, device="cpu", dtype="float32")
