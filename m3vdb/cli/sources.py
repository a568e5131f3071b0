"""Reading the documents to index: ``.txt`` and ``.md`` files (one document each, id = the
path relative to the root given) and ``.jsonl`` files (one ``{"id", "text", "metadata"?}``
object per line). Files are read lazily, one at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from m3vdb import Document, InputError

SUFFIXES = (".txt", ".md", ".jsonl")


@dataclass(frozen=True)
class Source:
    """One file to read; ids of ``.txt`` / ``.md`` files are relative to ``root``."""

    path: Path
    root: Path

    @property
    def is_jsonl(self) -> bool:
        return self.path.suffix.lower() == ".jsonl"


def discover(paths: Sequence[str | Path]) -> list[Source]:
    """The files to read, in a stable order: each file given, and every ``.txt``, ``.md`` and
    ``.jsonl`` file under each directory given (hidden files and folders left out).

    Raises:
        InputError: a path does not exist, a file has another suffix, or nothing was found.
    """
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            sources += [Source(p, path) for p in found]
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(
                    f"{path}: cannot index a {path.suffix or 'suffix-less'} file; give .txt, .md "
                    "or .jsonl files, or a directory holding them"
                )
            sources.append(Source(path, path.parent))
        else:
            raise InputError(f"{path}: no such file or directory")
    if not sources:
        raise InputError(
            f"no .txt, .md or .jsonl file under {', '.join(map(str, paths))}: nothing to index"
        )
    return sources


def count_documents(sources: Sequence[Source]) -> int:
    """How many documents ``read`` will yield (one per file, one per non-blank JSONL line).

    JSONL lines are parsed here too, so that a malformed line stops the run before the model
    is loaded and anything is written.
    """
    total = 0
    for source in sources:
        if source.is_jsonl:
            total += sum(1 for _ in _read_jsonl(source.path))
        else:
            total += 1
    return total


def read(sources: Sequence[Source]) -> Iterator[Document]:
    """Yields the documents of every source, in order.

    Raises:
        InputError: a file is not UTF-8, or a JSONL line is not an object with a non-empty
            ``id`` and a string ``text`` (the message gives ``file:line``).
    """
    for source in sources:
        if source.is_jsonl:
            yield from _read_jsonl(source.path)
        else:
            try:
                text = source.path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{source.path}: not UTF-8 text ({exc.reason})") from exc
            yield Document(source.path.relative_to(source.root).as_posix(), text)


def _read_jsonl(path: Path) -> Iterator[Document]:
    with path.open(encoding="utf-8") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _jsonl_document(line, f"{path}:{number}")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def _jsonl_document(line: str, where: str) -> Document:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object with 'id' and 'text', got {line[:60]!r}")
    doc_id, text, metadata = obj.get("id"), obj.get("text"), obj.get("metadata", {})
    # integer ids are common in exported data; the databases key on strings
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id:
        raise InputError(f"{where}: 'id' must be a non-empty string or an integer, got {doc_id!r}")
    if not isinstance(text, str):
        raise InputError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    if not isinstance(metadata, dict):
        raise InputError(f"{where}: 'metadata' must be an object, got {type(metadata).__name__}")
    return Document(doc_id, text, metadata)
