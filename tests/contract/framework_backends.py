"""What the framework-store tests read from a started contract backend: its score tolerance
and its weighted-fusion reference. One place, so that a change in how the contract suite
describes backends (module constants today) is one edit here, not one per test."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

WeightedFusion = Callable[[Mapping[str, float], Mapping[str, float], tuple[float, float]], dict]


def _description(backend_target: Any) -> Any:
    # a typed backend description when the suite has one, else the factory module
    return getattr(backend_target, "backend", None) or backend_target.factory


def tolerance(backend_target: Any) -> float:
    """Absolute tolerance of the backend's scores against float64 numpy."""
    desc = _description(backend_target)
    return float(getattr(desc, "score_tolerance", None) or desc.SCORE_TOLERANCE)


def fuse_weighted(backend_target: Any) -> WeightedFusion:
    """The backend's documented ``fusion="weighted"`` formula (numpy reference)."""
    fuse: WeightedFusion = _description(backend_target).fuse_weighted
    return fuse
