"""Reading the documents to index: ``.txt`` and ``.md`` files (one document each) and
``.jsonl`` files (one ``{"id", "text", "metadata"?}`` object per line).

Ids. A file's id is its path relative to the working directory (``notes/a.md``), or its
absolute path when it lies outside the working directory; ``./notes``, ``notes/`` and
``notes`` give the same ids. Two folders therefore never give the same id, in one run or
across runs started from the same directory (``m3vdb index projA`` then ``m3vdb index
projB`` stores ``projA/README.md`` and ``projB/README.md``). A JSONL line keeps its own id.

Every document gets ``source_file`` (the file's id) and ``source_folders`` (the folders
above it, ``"."`` first for a path under the working directory) in its metadata: ``index
--prune DIR`` finds the documents that came from DIR through them.

Reading happens twice: :func:`scan` reads and decodes every file and checks every id before
the model is loaded or anything is written (a bad file, a malformed line or a repeated id
fails the run with nothing written); :func:`read` then streams the documents again, one file
at a time, so a large corpus is never held in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3vdb.schemas.data import Document
from m3vdb.schemas.errors import InputError
from m3vdb.schemas.strings import unicode_problem

SUFFIXES = (".txt", ".md", ".jsonl")
# metadata keys the indexer writes; a JSONL document may not bring its own
RESERVED_KEYS = (
    "parent_id",
    "chunk",
    "chunks",
    "char_start",
    "char_end",
    "content_hash",
    "source_file",
    "source_folders",
)


@dataclass(frozen=True)
class Source:
    """One file to read."""

    path: Path

    @property
    def is_jsonl(self) -> bool:
        return self.path.suffix.lower() == ".jsonl"

    @property
    def file_id(self) -> str:
        return path_id(self.path)


def path_id(path: Path) -> str:
    """The id of a file or folder: relative to the working directory, else absolute (POSIX
    separators either way)."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return absolute.as_posix()


def folders_of(file_id: str) -> list[str]:
    """The folders above a file id, outermost first: ``notes/sub/a.md`` -> ``[".", "notes",
    "notes/sub"]``; ``/x/y/a.md`` -> ``["/", "/x", "/x/y"]``."""
    parents = list(reversed(Path(file_id).parents))
    return [p.as_posix() for p in parents]


@dataclass(frozen=True)
class Inventory:
    """What :func:`scan` found: every document's id (in order) and where it comes from."""

    where: dict[str, str]  # id -> "file" or "file:line"
    empty: list[str] = field(default_factory=list)  # where of documents with blank text
    folders: list[str] = field(default_factory=list)  # the directories given, as ids

    @property
    def count(self) -> int:
        return len(self.where)


def discover(paths: Sequence[str | Path]) -> tuple[list[Source], list[str]]:
    """The files to read, in a stable order, and the directories given (as ids): each file
    given, and every ``.txt``, ``.md`` and ``.jsonl`` file under each directory given (hidden
    files and folders left out). A file reached twice is read once.

    Raises:
        InputError: a path does not exist, a file has another suffix, or nothing was found.
    """
    sources: list[Source] = []
    folders: list[str] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            folders.append(path_id(path))
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(
                    f"{path}: cannot index a {path.suffix or 'suffix-less'} file; give .txt, .md "
                    "or .jsonl files, or a directory holding them"
                )
            found = [path]
        else:
            raise InputError(f"{path}: no such file or directory")
        for p in found:
            _check_name(p)
            key = Path(os.path.abspath(p))
            if key not in seen:
                seen.add(key)
                sources.append(Source(p))
    if not sources:
        raise InputError(
            f"no .txt, .md or .jsonl file under {', '.join(map(str, paths))}: nothing to index"
        )
    return sources, folders


def _check_name(path: Path) -> None:
    """InputError for a file name that is not UTF-8: its id could not be stored anywhere."""
    if unicode_problem(str(path)) is not None:
        raise InputError(
            f"{path}: the file name is not valid UTF-8 (its id could not be stored); "
            "rename it to UTF-8 (e.g. with convmv) or move it out of the folder"
        )


def scan(sources: Sequence[Source], folders: Sequence[str] = ()) -> Inventory:
    """Reads and checks every document without keeping the texts.

    Raises:
        InputError: a file is not UTF-8 text, a JSONL line is malformed, or an id appears
            twice (the message names both places).
    """
    where: dict[str, str] = {}
    empty: list[str] = []
    for doc, place in _documents(sources):
        first = where.get(doc.id)
        if first is not None:
            raise InputError(
                f"id {doc.id!r} appears twice: at {first} and at {place}; ids must be unique "
                "(nothing was written)"
            )
        where[doc.id] = place
        if not doc.text.strip():
            empty.append(place)
    return Inventory(where, empty, list(folders))


def read(sources: Sequence[Source]) -> Iterator[Document]:
    """Yields the documents of every source, in order (see the module docstring)."""
    for doc, _ in _documents(sources):
        yield doc


def _documents(sources: Sequence[Source]) -> Iterator[tuple[Document, str]]:
    for source in sources:
        file_id = source.file_id
        provenance: dict[str, Any] = {
            "source_file": file_id,
            "source_folders": folders_of(file_id),
        }
        if source.is_jsonl:
            for doc, place in _read_jsonl(source.path):
                yield Document(doc.id, doc.text, {**doc.metadata, **provenance}), place
        else:
            yield Document(file_id, _read_text(source.path), provenance), str(source.path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); convert it to UTF-8 "
            "or leave it out"
        ) from exc


def _read_jsonl(path: Path) -> Iterator[tuple[Document, str]]:
    with path.open(encoding="utf-8") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    where = f"{path}:{number}"
                    yield _jsonl_document(line, where), where
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}: not UTF-8 text ({exc.reason}); convert it to UTF-8 or leave it out"
            ) from exc


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
    reserved = sorted(set(metadata) & set(RESERVED_KEYS))
    if reserved:
        raise InputError(
            f"{where}: metadata keys {reserved} are written by m3vdb index itself (window and "
            "source bookkeeping); rename them"
        )
    return Document(doc_id, text, metadata)
