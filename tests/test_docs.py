"""Every ```python block of README.md, ARCHITECTURE.md and docs/*.md runs as written, so the
documented code cannot rot; and the README's commands are the ones CI runs.

The convention (one, for every document):

- Each block is self-contained: it runs alone, in a fresh namespace and a fresh temporary
  working directory that holds a copy of the repository's ``examples/`` folder (what a clone's
  root holds), so ``m3vdb.db``, ``docs.db`` and any folder a block makes land there. A block
  never relies on an earlier one; there is no "continues" marker.
- The only change made to a block: the hub id ``"BAAI/bge-m3"`` becomes the directory of the
  tiny offline checkpoint (``tiny_model_dir`` in tests/conftest.py).
- A block that needs something absent here (a running server, Elasticsearch, an API of a
  branch not merged yet) is preceded, on the line just above its fence, by
  ``<!-- test: skip (REASON) -->`` and is skipped with ``FILE:LINE: REASON`` printed. Keep
  such blocks few.
- A block importing a package that is not installed is skipped with the package named.
- Some blocks have extra checks (:data:`CHECKS`) on what they leave behind: the framework
  examples write ./m3vdb.db and find what they should.

Troubleshooting: a failure names the block as ``FILE:LINE`` (the line of its first code
line); run it by hand from a scratch folder with the tiny checkpoint
(``python tests/checkpoint_factory.py /tmp/tiny-bge-m3``) in place of ``BAAI/bge-m3``. Fix
the document (or the API) rather than this test.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"^<!--\s*test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
MARKER = re.compile(r"^<!--\s*test:")
HUB_ID = '"BAAI/bge-m3"'
# README.md's two commands, verbatim: the main job and the test command (.ci/run runs the
# latter, so what a reader types is what CI proves).
MAIN_JOB = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    "pip install -e '.[qdrant-edge]' && m3vdb index examples/crosslingual.jsonl && "
    'm3vdb search "AI transforms global society"'
)
TEST_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    "pip install -e '.[test]' && python -m pytest"
)


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its code, and its skip reason (None: it runs)."""

    document: Path
    line: int  # 1-based line of the block's first code line
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def python_blocks(document: Path) -> list[Block]:
    """The ```python blocks of ``document``, each with the skip marker just above its fence.

    Raises:
        ValueError: an unclosed fence, or a ``<!-- test: ... -->`` marker this test does not
            understand (a typo would otherwise run or skip a block silently).
    """
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if MARKER.match(stripped) and not SKIP.match(stripped):
            raise ValueError(f"{document.name}:{i + 1}: unknown marker {stripped!r}")
        if stripped == "```python":
            start = i + 1
            end = next((j for j in range(start, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise ValueError(f"{document.name}:{i + 1}: unclosed ```python block")
            above = lines[i - 1].strip() if i > 0 else ""
            match = SKIP.match(above)
            code = "\n".join(lines[start:end]) + "\n"
            blocks.append(Block(document, start + 1, code, match["reason"] if match else None))
            i = end
        i += 1
    return blocks


BLOCKS = [block for document in DOCUMENTS for block in python_blocks(document)]


def _block(document: str, contains: str) -> Block:
    """The one block of ``document`` whose code contains ``contains``."""
    found = [b for b in BLOCKS if b.document == ROOT / document and contains in b.code]
    assert len(found) == 1, f"{document}: {len(found)} python blocks contain {contains!r}"
    return found[0]


# --------------------------------------------------------------------------- extra checks


def _framework_store_wrote_two_documents(namespace: dict[str, Any], cwd: Path) -> None:
    assert (cwd / "m3vdb.db").exists()
    assert len(namespace["docs"]) == 2


def _llama_index_filter_keeps_one_node(namespace: dict[str, Any], cwd: Path) -> None:
    assert (cwd / "m3vdb.db").exists()
    assert len(namespace["nodes"]) == 1  # year >= 2024 keeps one of the two documents


def _llama_index_finds_both_nodes(namespace: dict[str, Any], cwd: Path) -> None:
    assert (cwd / "m3vdb.db").exists()
    assert len(namespace["nodes"]) == 2


def _haystack_finds_both_documents(namespace: dict[str, Any], cwd: Path) -> None:
    assert (cwd / "m3vdb.db").exists()
    assert len(namespace["docs"]) == 2
    assert len(namespace["result"]["retrieve"]["documents"]) == 2


def _crosslingual_example_indexed(namespace: dict[str, Any], cwd: Path) -> None:
    lines = (cwd / "examples" / "crosslingual.jsonl").read_text(encoding="utf-8").splitlines()
    report = namespace["report"]
    assert report.indexed == len([line for line in lines if line.strip()])
    assert (cwd / "m3vdb.db").exists()


Check = Callable[[dict[str, Any], Path], None]
#: (document, a string only that block contains) -> what it must leave behind.
CHECKS: dict[tuple[str, str], Check] = {
    ("README.md", "from m3vdb.langchain import"): _framework_store_wrote_two_documents,
    ("README.md", "from m3vdb.llama_index import"): _llama_index_finds_both_nodes,
    ("README.md", "from m3vdb.haystack import"): _framework_store_wrote_two_documents,
    ("docs/frameworks.md", "from m3vdb.langchain import"): _framework_store_wrote_two_documents,
    ("docs/frameworks.md", "from m3vdb.llama_index import"): _llama_index_filter_keeps_one_node,
    ("docs/frameworks.md", "from m3vdb.haystack import"): _haystack_finds_both_documents,
    ("README.md", "m3vdb.index("): _crosslingual_example_indexed,
    ("docs/indexing.md", '"examples/crosslingual.jsonl"'): _crosslingual_example_indexed,
}


def _checks_for(block: Block) -> list[Check]:
    name = str(block.document.relative_to(ROOT))
    return [check for (doc, text), check in CHECKS.items() if doc == name and text in block.code]


# --------------------------------------------------------------------------- tests


def test_the_documents_exist_and_have_python_examples() -> None:
    """README.md, ARCHITECTURE.md and the reference in docs/ are all read; a block that
    moves or is deleted must not take its extra check with it silently."""
    names = {str(d.relative_to(ROOT)) for d in DOCUMENTS}
    assert {"README.md", "ARCHITECTURE.md", "docs/targets.md", "docs/indexing.md"} <= names
    assert len(BLOCKS) >= 10
    for document, contains in CHECKS:
        block = _block(document, contains)
        assert block.skip is None, f"{block.name} has an extra check but is skipped"


def test_readme_stays_short_and_links_the_reference() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 220, "README.md is the front page: move reference to docs/"
    reference = [f"docs/{d.name}" for d in DOCUMENTS if d.parent == ROOT / "docs"]
    for link in ("ARCHITECTURE.md", *reference):
        assert f"]({link}" in readme, f"README.md does not link {link}"


def test_readme_commands_are_the_ones_ci_runs() -> None:
    """The README's main-job line and test command are verbatim, and .ci/run runs the test
    command exactly (CI proves what a reader types)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MAIN_JOB in readme.splitlines()
    assert TEST_COMMAND in readme.splitlines()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines()


def test_cli_options_in_the_docs_exist() -> None:
    """Every ``--option`` written in docs/cli.md is an option of ``m3vdb`` or of one of its
    commands."""
    from m3vdb.cli.main import build_parser

    known: set[str] = set()
    parser = build_parser()
    for action in parser._actions:  # noqa: SLF001 (argparse has no public listing)
        known.update(o for o in action.option_strings if o.startswith("--"))  # --version
        for sub in getattr(action, "choices", None) or {}:
            for sub_action in action.choices[sub]._actions:  # type: ignore[index]  # noqa: SLF001
                known.update(o for o in sub_action.option_strings if o.startswith("--"))
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    written = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    unknown = sorted(written - known)
    assert not unknown, f"docs/cli.md names options no m3vdb command has: {unknown}"


def test_skip_markers_are_understood() -> None:
    sample = ROOT / "docs" / "targets.md"
    assert any(b.skip for b in python_blocks(sample)), "the skip marker is no longer parsed"


def _missing_imports(code: str) -> list[str]:
    """Top-level packages the block imports that are not installed."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return sorted(r for r in roots if importlib.util.find_spec(r) is None)


def _close(namespace: dict[str, Any]) -> None:
    """Releases what a block left open: stores (their clients, Milvus Lite's server) and the
    LlamaIndex global embed model."""
    for name in ("store", "vector_store"):
        value = namespace.get(name)
        if value is not None and callable(getattr(value, "close", None)):
            value.close()
    if "llama_index.core" in sys.modules:
        from llama_index.core import Settings

        Settings._embed_model = None  # noqa: SLF001 (the example sets the global model)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_python_block_runs(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    missing = _missing_imports(block.code)
    if missing:
        pytest.skip(f"{block.name}: {', '.join(missing)} not installed (pip install -e '.[test]')")
    if ".db" in block.code and importlib.util.find_spec("milvus_lite") is None:
        pytest.skip(f"{block.name}: milvus-lite is not installed (its Lite file examples)")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    code = block.code.replace(HUB_ID, repr(str(tiny_model_dir)))
    namespace: dict[str, Any] = {"__name__": f"doc_block_{block.line}"}
    try:
        exec(compile(code, block.name, "exec"), namespace)
        for check in _checks_for(block):
            check(namespace, tmp_path)
    finally:
        _close(namespace)
