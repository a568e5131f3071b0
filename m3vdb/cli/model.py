"""The model as the command line needs it: its dimensions read from ``config.json`` without
torch (enough to open, describe or drop a collection), and the encoder itself, loaded only by
``index`` and ``search`` after the user's input has been checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from m3vdb.errors import InputError
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from m3vdb.encoder import M3Encoder

DEFAULT_MODEL = "BAAI/bge-m3"
BGE_M3_DIM = 1024


def check_model_path(model: str) -> None:
    """InputError when ``model`` is written as a path but no directory is there (rather than
    a failed download of a hub id that looks like a path)."""
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().is_dir():
        raise InputError(
            f"no model directory at {model}: pass an existing checkpoint directory or a hub "
            f"id (default {DEFAULT_MODEL})"
        )


def model_dim(model: str) -> int:
    """The model's hidden size (= BGE-M3's dense and ColBERT dimension) from its
    ``config.json``: a local directory's, or the hub cache's; BGE-M3's 1024 when neither is
    there. Reads one small file: no torch, no network."""
    check_model_path(model)
    path = Path(model).expanduser()
    config: Path | None = path / "config.json" if path.is_dir() else _cached_config(model)
    if config is None or not config.is_file():
        return BGE_M3_DIM
    try:
        hidden = json.loads(config.read_text(encoding="utf-8")).get("hidden_size")
    except (OSError, ValueError):
        return BGE_M3_DIM
    return int(hidden) if isinstance(hidden, int) and hidden > 0 else BGE_M3_DIM


def _cached_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub would reject: the encoder says so when it loads
        return None
    return Path(found) if isinstance(found, str) else None


def spec_for_model(model: str) -> IndexSpec:
    """The IndexSpec ``index`` creates for ``model`` (all three outputs at its dimension; the
    collection records ``model`` as given: a hub id, or the checkpoint directory)."""
    dim = model_dim(model)
    return IndexSpec(dense_dim=dim, colbert_dim=dim, model=model)


def check_device(device: str | None) -> None:
    """InputError, in the user's words, for a ``--device`` this PyTorch cannot use (before the
    model is loaded: torch would fail deep inside with an AssertionError)."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as exc:
        raise InputError(
            f"--device {device} is not a device name: use cpu, cuda, cuda:N or mps"
        ) from exc
    if kind == "cuda" and not torch.cuda.is_available():
        build = torch.__version__
        why = (
            "this PyTorch build has no CUDA support"
            if torch.version.cuda is None
            else "no CUDA GPU is visible to this process"
        )
        raise InputError(
            f"--device {device}: {why} (torch {build}); use --device cpu, or install a CUDA "
            "build of PyTorch (https://pytorch.org/get-started/locally/)"
        )
    if kind == "cuda" and ":" in device:
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise InputError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), numbered from 0"
            )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"--device {device}: MPS (Apple GPU) is not available here")


def load_encoder(model: str, *, device: str | None, dtype: str) -> M3Encoder:
    """The encoder, after the model path and the device have been checked."""
    check_model_path(model)
    check_device(device)
    from m3vdb.encoder import M3Encoder

    return M3Encoder(model, device=device, dtype=dtype)  # type: ignore[arg-type]
