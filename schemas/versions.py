"""Version strings of database servers, parsed once for capability detection."""

from __future__ import annotations

import re


def parse_version(version: str) -> tuple[int, int, int] | None:
    """``"v2.6.4-rc1"`` -> ``(2, 6, 4)``; ``"9.1"`` -> ``(9, 1, 0)``; None when no
    ``major.minor[.patch]`` is found."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
