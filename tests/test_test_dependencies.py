"""The test extra's testcontainers floor allows the modules the contract backends import
(issue 14, item 9): ``testcontainers.community.*`` exists only from testcontainers 4.15.0
(4.14.x has the flat ``testcontainers.elasticsearch``, which 4.15.0 deprecates)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMUNITY_SINCE = (4, 15, 0)


def _testcontainers_floor() -> tuple[int, ...]:
    # A regex, not tomllib: the project supports Python 3.10, which has no tomllib.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (requirement,) = re.findall(r'"(testcontainers[^"]*)"', text)
    found = re.search(r">=\s*([0-9.]+)", requirement)
    assert found, f"testcontainers needs a floor in the test extra, got {requirement!r}"
    return tuple(int(p) for p in found.group(1).split("."))


def _imported_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "tests" / "contract").glob("backend_*.py"):
        modules |= set(re.findall(r"from (testcontainers[\w.]*) import", path.read_text()))
    return modules


def test_the_floor_allows_every_module_the_contract_backends_import() -> None:
    modules = _imported_modules()
    assert "testcontainers.community.elasticsearch" in modules
    if any(m.startswith("testcontainers.community.") for m in modules):
        floor = _testcontainers_floor()
        assert floor >= COMMUNITY_SINCE, (
            f"pyproject allows testcontainers {'.'.join(map(str, floor))}, which has no "
            f"testcontainers.community; raise the floor to >= 4.15.0"
        )


def test_the_installed_testcontainers_has_those_modules() -> None:
    pytest.importorskip("testcontainers", reason="testcontainers not installed")
    for module in sorted(_imported_modules()):
        assert importlib.util.find_spec(module) is not None, module
