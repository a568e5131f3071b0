"""What the framework-store tests read from a started contract backend: its score tolerance
and its weighted-fusion reference, from the backend's typed description."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from conftest import BackendTarget

WeightedFusion = Callable[[Mapping[str, float], Mapping[str, float], tuple[float, float]], dict]


def tolerance(backend_target: BackendTarget) -> float:
    """Absolute tolerance of the backend's scores against float64 numpy."""
    return float(backend_target.backend.score_tolerance)


def fuse_weighted(backend_target: BackendTarget) -> WeightedFusion:
    """The backend's documented ``fusion="weighted"`` formula (numpy reference)."""
    fuse: WeightedFusion = backend_target.backend.fuse_weighted
    return fuse
