"""The README's LlamaIndex and Haystack examples, run as written on the tiny checkpoint (the
only change: ``BAAI/bge-m3`` becomes the tiny checkpoint's directory), each in a fresh
folder, so the documented code keeps working.

Troubleshooting: a failure here means the README example no longer matches the API; fix the
example (or the API) rather than this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _example(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python example under '## {heading}'"
    return match.group(1)


@pytest.mark.parametrize(
    ("heading", "package"),
    [
        ("RAG: a LlamaIndex vector store", "llama_index.core"),
        ("RAG: a Haystack document store", "haystack"),
    ],
)
def test_readme_framework_example_runs(
    heading: str,
    package: str,
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip(package, reason=f"{package} is not installed")
    pytest.importorskip("milvus_lite", reason="the examples use Milvus Lite")
    code = _example(heading).replace('"BAAI/bge-m3"', repr(str(tiny_model_dir)))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    try:
        exec(compile(code, f"README.md ({heading})", "exec"), namespace)
    finally:
        if package == "llama_index.core":
            from llama_index.core import Settings

            Settings._embed_model = None  # the example sets the global embed model
        store = namespace.get("store")
        if store is not None:
            store.close()  # type: ignore[attr-defined]
    assert (tmp_path / "m3vdb.db").exists()
    if package == "haystack":
        assert len(namespace["docs"]) == 2  # type: ignore[arg-type]
        assert len(namespace["result"]["retrieve"]["documents"]) == 2  # type: ignore[index]
    else:
        assert len(namespace["nodes"]) == 1  # type: ignore[arg-type]
