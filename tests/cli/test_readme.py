"""Every ```python block of README.md runs as written, with the tiny checkpoint in place of
the hub id and embedded targets, so the examples cannot rot.

A block that needs a server is preceded by ``<!-- readme-test: skip REASON -->`` and skipped
with that reason. Troubleshooting: a failure names the block's first line in README.md;
blocks run one by one, each in a fresh namespace and a fresh working directory (so
``docs.db`` / ``m3vdb.db`` land in a temporary directory).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s+(?P<reason>.*?)\s*-->\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(first line number, code, skip reason or None) of each ```python block."""
    blocks: list[tuple[int, str, str | None]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            match = SKIP.search(previous)
            blocks.append((start + 1, "\n".join(lines[start:end]), match and match["reason"]))
            i = end
        i += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 4
    assert any(reason for *_, reason in BLOCKS)  # the skip marker is understood


@pytest.mark.parametrize(
    ("line", "code", "skip"), BLOCKS, ids=[f"README.md:{line}" for line, *_ in BLOCKS]
)
def test_readme_python_block_runs(
    line: int,
    code: str,
    skip: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
) -> None:
    if skip:
        pytest.skip(f"README.md:{line}: {skip}")
    if "m3vdb.langchain" in code:
        pytest.importorskip("langchain_core", reason="langchain-core is not installed")
    if ".db" in code:
        pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    monkeypatch.chdir(tmp_path)
    runnable = code.replace('"BAAI/bge-m3"', repr(str(tiny_model_dir)))
    namespace: dict[str, object] = {"__name__": f"readme_line_{line}"}
    exec(compile(runnable, f"README.md:{line}", "exec"), namespace)
