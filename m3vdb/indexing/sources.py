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

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3vdb.errors import InputError
from m3vdb.indexing.chunking import BOOKKEEPING_KEYS
from m3vdb.schemas.data import Document
from m3vdb.schemas.strings import unicode_problem

SUFFIXES = (".txt", ".md", ".jsonl")
# metadata keys the indexer writes; a JSONL document may not bring its own
RESERVED_KEYS = (*BOOKKEEPING_KEYS, "source_file", "source_folders")


#: The largest .txt / .md file, or JSONL line, read by default (``max_file_bytes``): a document
#: is held whole while it is encoded, and its ColBERT rows take ~4 KB per token.
DEFAULT_MAX_FILE_BYTES = 10 * 2**20


@dataclass(frozen=True)
class Source:
    """One file to read, and the most bytes one document of it may have."""

    path: Path
    max_bytes: int = DEFAULT_MAX_FILE_BYTES

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


def discover(
    paths: Sequence[str | Path], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[list[Source], list[str]]:
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
                sources.append(Source(p, max_file_bytes))
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
    _refuse_window_like_ids(where)
    return Inventory(where, empty, list(folders))


def _refuse_window_like_ids(where: dict[str, str]) -> None:
    """InputError when an id has the form ``DOC#N`` of a window of another document ``DOC``
    of the same input: if ``DOC`` is long, its windows would take that id."""
    for doc_id, place in where.items():
        parent, sep, number = doc_id.rpartition("#")
        if sep and number.isdigit() and parent in where:
            raise InputError(
                f"id {doc_id!r} at {place} is the id window {number} of document {parent!r} "
                f"(at {where[parent]}) gets when it is long enough to be split: rename one of "
                "them (nothing was written)"
            )


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
            for doc, place in _read_jsonl(source.path, source.max_bytes):
                yield Document(doc.id, doc.text, {**doc.metadata, **provenance}), place
        else:
            text = _read_text(source.path, source.max_bytes)
            yield Document(file_id, text, provenance), str(source.path)


def _too_large(where: str, size: str, limit: int) -> InputError:
    return InputError(
        f"{where}: {size} is more than the {limit / 2**20:g} MiB one document may have; "
        "split it, leave it out, or raise the limit (m3vdb index --max-file-size MIB, "
        "m3vdb.index(..., max_file_bytes=N))"
    )


def _read_text(path: Path, limit: int) -> str:
    size = path.stat().st_size
    if size > limit:  # checked before reading: memory stays bounded whatever a folder holds
        raise _too_large(str(path), f"{size / 2**20:,.1f} MiB", limit)
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the text
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); convert it to UTF-8 "
            "or leave it out"
        ) from exc


def _read_jsonl(path: Path, limit: int) -> Iterator[tuple[Document, str]]:
    with path.open(encoding="utf-8-sig") as lines:
        try:
            number = 0
            # one line at a time, at most limit + 1 characters of it: a line with no end in
            # sight is refused without being held
            while line := lines.readline(limit + 1):
                number += 1
                if len(line) > limit:
                    raise _too_large(f"{path}:{number}", "the line", limit)
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


#: What :meth:`Corpus.of` takes: a path, a Document, or an iterable of either kind.
SourceLike = str | os.PathLike[str] | Document


class Corpus:
    """The documents of one indexing run.

    From paths (:meth:`from_paths`): every file is read and checked when the corpus is made,
    before anything is opened or written, then read again, one file at a time, while indexing.
    From documents (:meth:`from_documents`): streamed as the iterable yields them, never held
    in memory; each batch is checked before it is written.

    Attributes:
        count: the number of documents, when known (for the progress bar).
        folders: the directories given (ids, see :func:`path_id`): what ``prune`` looks in.
        ids: every document's id, when read up front (what ``prune`` keeps).
    """

    def __init__(
        self,
        documents: Callable[[], Iterator[Document]],
        *,
        count: int | None = None,
        folders: Sequence[str] = (),
        ids: frozenset[str] | None = None,
        rereadable: bool = False,
    ) -> None:
        self._documents = documents
        self.count = count
        self.folders = list(folders)
        self.ids = ids
        self.rereadable = rereadable

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> Corpus:
        """Files and folders (see :func:`discover`), read and checked now.

        Args:
            paths: files and folders.
            max_file_bytes: the most bytes a .txt / .md file, or a JSONL line, may have.

        Raises:
            InputError: a missing path, a file of another kind, a file that is not UTF-8 or
                larger than ``max_file_bytes``, a malformed JSONL line, or an id given twice
                (the message names the place).
        """
        if max_file_bytes <= 0:
            raise InputError(f"max_file_bytes must be positive, got {max_file_bytes}")
        files, folders = discover([Path(p) for p in paths], max_file_bytes=max_file_bytes)
        inventory = scan(files, folders)
        return cls(
            lambda: read(files),
            count=inventory.count,
            folders=folders,
            ids=frozenset(inventory.where),
            rereadable=True,
        )

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> Corpus:
        """Documents given in Python, consumed once, lazily."""
        count = len(documents) if isinstance(documents, Sized) else None
        iterator = iter(documents)
        return cls(lambda: iterator, count=count)

    @classmethod
    def of(
        cls,
        sources: SourceLike | Iterable[SourceLike],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> Corpus:
        """A corpus from paths or from documents, whichever ``sources`` holds (not both).

        Raises:
            TypeError: ``sources`` mixes paths and documents, or holds something else.
        """
        if isinstance(sources, (str, os.PathLike)):
            return cls.from_paths([sources], max_file_bytes=max_file_bytes)
        if isinstance(sources, Document):
            return cls.from_documents([sources])
        iterator = iter(sources)
        first = next(iterator, None)
        if first is None:
            return cls.from_documents([])
        rest = itertools.chain([first], iterator)
        if isinstance(first, Document):
            return cls.from_documents(_only_documents(rest))
        paths = list(rest)
        strange = [p for p in paths if not isinstance(p, (str, os.PathLike))]
        if strange:
            raise TypeError(
                f"sources hold a {type(strange[0]).__name__} among paths; give paths (str or "
                "Path) or m3vdb.Document objects, not both"
            )
        return cls.from_paths(paths, max_file_bytes=max_file_bytes)  # type: ignore[arg-type]

    def documents(self) -> Iterator[Document]:
        """The documents, in order (a corpus from documents yields them once)."""
        return self._documents()


def _only_documents(items: Iterable[object]) -> Iterator[Document]:
    for position, item in enumerate(items):
        if not isinstance(item, Document):
            raise TypeError(
                f"source {position} is a {type(item).__name__} among Documents; give "
                "m3vdb.Document objects or paths, not both"
            )
        yield item
