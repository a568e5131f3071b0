"""Reading the documents to index: ``.txt`` and ``.md`` files (one document each),
``.jsonl`` files (one ``{"id", "text", "metadata"?}`` object per line) and, with the extra
``m3vdb[documents]``, PDF, HTML and DOCX files (one document per PDF page or per section,
see :mod:`m3vdb.indexing.documents`).

Ids. A file under a folder given is ``NAME/PATH``: the folder's own name, then the file's
path below it, from whatever directory the command runs: ``m3vdb index ~/notes`` stores
``notes/sub/a.md``, and so does ``cd ~/notes && m3vdb index .``. A file given by itself keeps
the path as given when it is relative and inside the working directory (``m3vdb index
docs/a.md`` stores ``docs/a.md``, as ``m3vdb index docs`` does), else its name (``m3vdb
index /tmp/a.md`` stores ``a.md``): see :func:`given_file_id`. A PDF page is
``FILE#page=N``, a section of an HTML or DOCX file ``FILE#section=N`` (from 1). A JSONL line
keeps its own id. Two paths that give the same id fail the run before anything is written,
naming both files.

Every document gets ``source_file`` (the file's id) and ``source_folders`` (the folders
above it, ``"."`` first) in its metadata: ``index --prune DIR`` finds the documents that
came from DIR through them.

Which files. Under a folder: every file whose suffix has a reader, except hidden files and
folders (a name starting with ``.``: ``.git``, ``.venv``) and what an ``exclude`` pattern
(``.gitignore`` syntax, matched from the folder given) leaves out. A file reached twice (two
roots, a symbolic link to a file already read) is read once, under the id of its first
path that is not a link. Every other file is reported as :class:`Skipped` with its reason
(no reader for its suffix, excluded, a link, the extra missing), never dropped in silence.

Reading happens twice: :func:`scan` reads, decodes and converts every file, and checks every
id and every metadata value, before the model is loaded or anything is written (a bad file,
a malformed line or a repeated id fails the run with nothing written, naming the file and
line; with ``skip_errors`` the file is left out and reported instead); :func:`read` then
streams the documents again, one file at a time, so a large corpus is never held in memory.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3vdb.errors import InputError, M3VDBError
from m3vdb.indexing import documents as converters
from m3vdb.indexing.chunking import BOOKKEEPING_KEYS
from m3vdb.schemas.data import Document
from m3vdb.schemas.strings import check_document_strings, unicode_problem

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (*TEXT_SUFFIXES, ".jsonl", *converters.SUFFIXES)
# metadata keys the indexer writes; a JSONL document may not bring its own
RESERVED_KEYS = (*BOOKKEEPING_KEYS, "source_file", "source_folders")


#: The largest .txt / .md file, JSONL line or converted PDF page / HTML or DOCX section read
#: by default (``max_file_bytes``): a document is held whole while it is encoded, and its
#: ColBERT rows take ~4 KB per token.
DEFAULT_MAX_FILE_BYTES = 10 * 2**20


@dataclass(frozen=True)
class Source:
    """One file to read, its id, and the most bytes one document of it may have."""

    path: Path
    file_id: str = ""
    max_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        if not self.file_id:
            object.__setattr__(self, "file_id", self.path.name)

    @property
    def kind(self) -> str:
        """``"jsonl"``, ``"text"`` or ``"document"`` (PDF, HTML, DOCX)."""
        suffix = self.path.suffix.lower()
        if suffix == ".jsonl":
            return "jsonl"
        return "document" if suffix in converters.SUFFIXES else "text"

    @property
    def is_jsonl(self) -> bool:
        return self.kind == "jsonl"


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, and why (one line)."""

    file: str
    reason: str
    error: bool = False  # a file that could not be read (with ``skip_errors``), not a rule


def root_name(path: Path) -> str:
    """The name a root gives its files' ids: its own name (``.`` is the working directory's)."""
    return Path(os.path.abspath(path)).name


def given_file_id(path: Path) -> str:
    """The id of a file given by itself: the path as given, normalised (``./a.md`` ->
    ``a.md``), when it is relative and stays below the working directory, which is the id
    ``m3vdb index`` has always given it and the id its folder's run gives when the folder is
    given by its own name (``m3vdb index docs`` and ``m3vdb index docs/a.md`` both store
    ``docs/a.md``); else (an absolute path, ``..``) the file's name."""
    normal = os.path.normpath(path.as_posix())
    if path.is_absolute() or normal == ".." or normal.startswith("../"):
        return path.name
    return Path(normal).as_posix()


def folders_of(file_id: str) -> list[str]:
    """The folders above a file id, outermost first: ``notes/sub/a.md`` -> ``[".", "notes",
    "notes/sub"]``."""
    parents = list(reversed(Path(file_id).parents))
    return [p.as_posix() for p in parents]


@dataclass(frozen=True)
class Inventory:
    """What :func:`scan` found: every document's id (in order) and where it comes from."""

    where: dict[str, str]  # id -> "file" or "file:line"
    empty: list[str] = field(default_factory=list)  # where of documents with blank text
    folders: list[str] = field(default_factory=list)  # the directories given, as ids
    skipped: list[Skipped] = field(default_factory=list)  # files left out by an error
    sources: list[Source] = field(default_factory=list)  # the files that were read

    @property
    def count(self) -> int:
        return len(self.where)


@dataclass
class Discovery:
    """What :func:`discover` found: the files to read, the folders given (ids) and the files
    left out, each with its reason."""

    sources: list[Source] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    hidden: int = 0  # hidden files and folders not entered (names starting with ".")


def discover(
    paths: Sequence[str | Path],
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    exclude: Sequence[str] = (),
    skip_errors: bool = False,
) -> Discovery:
    """The files to read, in a stable order (see the module docstring).

    Args:
        paths: files and folders.
        max_file_bytes: the most bytes one document may have.
        exclude: ``.gitignore``-style patterns, matched against each path relative to the
            folder given (``*.log``, ``build/``, ``/drafts/*.md``).
        skip_errors: a file given by name that cannot be indexed (no reader for its suffix,
            the extra missing) is skipped and reported instead of failing the run.

    Raises:
        InputError: a path does not exist, a file given by name cannot be indexed (unless
            ``skip_errors``), an exclude pattern is malformed, or nothing was found.
        MissingDependencyError: a PDF / HTML / DOCX file given by name, without the extra
            (unless ``skip_errors``).
    """
    spec = _exclude_spec(exclude)
    found = Discovery()
    candidates: list[tuple[Path, str, bool]] = []  # (path, id, is a link)
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            name = root_name(path)
            found.folders.append(name)
            candidates += _walk(path, name, spec, found)
        elif path.is_file():
            file_id = given_file_id(path)
            problem = _unreadable_kind(path)
            if problem is not None:
                if not skip_errors:
                    raise problem
                found.skipped.append(Skipped(file_id, str(problem)))
                continue
            if spec is not None and spec.match_file(path.name):
                found.skipped.append(Skipped(file_id, "excluded"))
                continue
            candidates.append((path, file_id, path.is_symlink()))
        elif path.is_symlink():
            raise InputError(f"{path}: a symbolic link to nothing (its target is gone)")
        else:
            raise InputError(f"{path}: no such file or directory")
    _dedupe(candidates, found, max_file_bytes)
    if not found.sources:
        listed = "; ".join(f"{s.file}: {s.reason}" for s in found.skipped[:5])
        raise InputError(
            f"no file to index under {', '.join(map(str, paths))}"
            + (f" (left out: {listed})" if listed else "")
            + f"; m3vdb index reads {', '.join(SUFFIXES)} files"
        )
    return found


def _exclude_spec(patterns: Sequence[str]) -> Any:
    if not patterns:
        return None
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(list(patterns))
    except Exception as exc:  # pathspec raises its own error types for a bad pattern
        raise InputError(f"--exclude: a pattern is not .gitignore syntax: {exc}") from exc


def _walk(root: Path, name: str, spec: Any, found: Discovery) -> list[tuple[Path, str, bool]]:
    """The candidate files under ``root`` (links to files included; links to folders are
    not followed, so a link loop cannot trap the walk)."""
    out: list[tuple[Path, str, bool]] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(folder)
        rel_base = base.relative_to(root)
        kept = []
        for d in sorted(dirnames):
            rel = (rel_base / d).as_posix()
            if d.startswith("."):
                found.hidden += 1
            elif (base / d).is_symlink():
                found.skipped.append(Skipped(f"{name}/{rel}", "a link to a folder (not followed)"))
            elif spec is not None and spec.match_file(rel + "/"):
                found.skipped.append(Skipped(f"{name}/{rel}/", "excluded"))
            else:
                kept.append(d)
        dirnames[:] = kept  # os.walk enters only these, in this order
        for f in sorted(filenames):
            path = base / f
            rel = (rel_base / f).as_posix()
            file_id = f"{name}/{rel}" if name else rel
            if f.startswith("."):
                found.hidden += 1
            elif spec is not None and spec.match_file(rel):
                found.skipped.append(Skipped(file_id, "excluded"))
            elif not path.is_file():
                what = "a link to nothing" if path.is_symlink() else "not a regular file"
                found.skipped.append(Skipped(file_id, what))
            elif (problem := _unreadable_kind(path)) is not None:
                found.skipped.append(Skipped(file_id, _short(problem)))
            else:
                out.append((path, file_id, path.is_symlink()))
    return out


def _unreadable_kind(path: Path) -> M3VDBError | None:
    """Why a file of this kind cannot be indexed here (no reader for its suffix, the
    documents extra missing), else None."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        return InputError(
            f"{path}: no reader for {'a ' + suffix if suffix else 'a suffix-less'} file; "
            f"m3vdb index reads {', '.join(SUFFIXES)} files"
        )
    if suffix in converters.SUFFIXES:
        return converters.missing_converter(path)
    return None


def _short(problem: M3VDBError) -> str:
    """A skip reason in a few words (a whole message per file would drown the summary)."""
    if isinstance(problem, InputError):
        return "no reader for its suffix"
    return f"needs pip install 'm3vdb[{converters.EXTRA}]'"


def _dedupe(
    candidates: list[tuple[Path, str, bool]], found: Discovery, max_file_bytes: int
) -> None:
    """One source per real file: its first path that is not a link, else its first path."""
    chosen: dict[Path, tuple[Path, str, bool]] = {}
    order: list[Path] = []
    for candidate in candidates:
        path, file_id, is_link = candidate
        key = path.resolve()
        first = chosen.get(key)
        if first is None:
            chosen[key] = candidate
            order.append(key)
        elif first[2] and not is_link:
            chosen[key] = candidate  # the file itself, rather than a link to it
            found.skipped.append(Skipped(first[1], f"the same file as {file_id}"))
        elif first[1] != file_id:
            found.skipped.append(Skipped(file_id, f"the same file as {first[1]}"))
    for key in order:
        path, file_id, _ = chosen[key]
        _check_name(path, file_id)
        found.sources.append(Source(path, file_id, max_file_bytes))


def _check_name(path: Path, file_id: str) -> None:
    """InputError for a file name that is not UTF-8: its id could not be stored anywhere."""
    if unicode_problem(file_id) is not None:
        raise InputError(
            f"{path}: the file name is not valid UTF-8 (its id could not be stored); "
            "rename it to UTF-8 (e.g. with convmv) or move it out of the folder"
        )


def scan(
    sources: Sequence[Source], folders: Sequence[str] = (), *, skip_errors: bool = False
) -> Inventory:
    """Reads and checks every document without keeping the texts: decoding, conversion,
    JSONL syntax, ids (unique, not another document's window id), metadata (the rule every
    database applies) and sizes.

    Args:
        sources: the files.
        folders: the folders given (kept in the inventory).
        skip_errors: a file with an error is left out of the inventory and reported in
            ``Inventory.skipped`` (one line each) instead of failing the scan.

    Raises:
        InputError: (without ``skip_errors``) a file is not UTF-8 text or cannot be
            converted, a JSONL line is malformed or breaks the metadata rule, or an id
            appears twice (the message names the file and line of both); every such file
            is named in one error, not only the first.
    """
    where: dict[str, str] = {}
    window_like: dict[str, tuple[str, str]] = {}
    empty: list[str] = []
    skipped: list[Skipped] = []
    kept: list[Source] = []
    for source in sources:
        mine: dict[str, str] = {}
        blank: list[str] = []
        try:
            for doc, place in _documents([source]):
                _check_document(doc, place)
                first = where.get(doc.id) or mine.get(doc.id)
                if first is not None:
                    raise InputError(
                        f"id {doc.id!r} appears twice: at {first} and at {place}; ids must be "
                        "unique (nothing was written)"
                    )
                mine[doc.id] = place
                if not doc.text.strip():
                    blank.append(place)
            _refuse_window_like_ids(mine, where, window_like)
        except InputError as exc:
            skipped.append(Skipped(source.file_id, str(exc), error=True))
            continue
        where.update(mine)
        empty += blank
        kept.append(source)
    if skipped and not skip_errors:
        # every bad file at once: not one per run
        if len(skipped) == 1:
            raise InputError(skipped[0].reason)
        raise InputError(
            f"{len(skipped):,} files cannot be indexed (nothing was written): "
            + "; ".join(s.reason for s in skipped)
            + ". Fix or --exclude them, or give --skip-errors to index the rest"
        )
    return Inventory(where, empty, list(folders), skipped, kept)


def _check_document(doc: Document, place: str) -> None:
    """The metadata rule and valid Unicode, as every database applies them at write time,
    with the file and line in the message."""
    from m3vdb.connectors.common import validate_metadata

    try:
        validate_metadata(doc.metadata, doc.id)
        check_document_strings(doc)
    except (InputError, TypeError) as exc:
        raise InputError(f"{place}: {exc}") from exc


def _refuse_window_like_ids(
    new: dict[str, str], old: dict[str, str], window_like: dict[str, tuple[str, str]]
) -> None:
    """InputError when an id has the form ``DOC#N`` of a window of another document ``DOC``
    of the same input: if ``DOC`` is long, its windows would take that id. ``new``: this
    file's ids; ``old``: the ids of the files before it; ``window_like``: their ``DOC#N``
    ids by ``DOC`` (updated here)."""
    for doc_id, place in new.items():
        parent, sep, number = doc_id.rpartition("#")
        if sep and number.isdigit():
            at = new.get(parent) or old.get(parent)
            if at is not None:
                raise _window_clash(doc_id, place, parent, at)
        earlier = window_like.get(doc_id)
        if earlier is not None:
            raise _window_clash(earlier[0], earlier[1], doc_id, place)
    for doc_id, place in new.items():
        parent, sep, number = doc_id.rpartition("#")
        if sep and number.isdigit():
            window_like.setdefault(parent, (doc_id, place))


def _window_clash(doc_id: str, place: str, parent: str, at: str) -> InputError:
    number = doc_id.rpartition("#")[2]
    return InputError(
        f"id {doc_id!r} at {place} is the id window {number} of document {parent!r} (at {at}) "
        "gets when it is long enough to be split: rename one of them (nothing was written)"
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
        if source.kind == "jsonl":
            for doc, place in _read_jsonl(source.path, source.max_bytes):
                yield Document(doc.id, doc.text, {**doc.metadata, **provenance}), place
        elif source.kind == "document":
            yield from _converted(source, provenance)
        else:
            text = _read_text(source.path, source.max_bytes)
            yield Document(file_id, text, provenance), str(source.path)


def _converted(source: Source, provenance: dict[str, Any]) -> Iterator[tuple[Document, str]]:
    """A PDF page or an HTML / DOCX section per document (a file with no text at all: one
    empty document under the file's id, reported as empty)."""
    parts = converters.convert(source.path)
    if not parts:
        yield Document(source.file_id, "", provenance), str(source.path)
        return
    for number, part in enumerate(parts, start=1):
        label = f"page={part.metadata['page']}" if "page" in part.metadata else f"section={number}"
        place = f"{source.path} ({label.replace('=', ' ')})"
        if len(part.text.encode("utf-8")) > source.max_bytes:
            raise _too_large(place, "its text", source.max_bytes)
        doc_id = f"{source.file_id}#{label}"
        yield Document(doc_id, part.text, {**part.metadata, **provenance}), place


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
        folders: the directories given (ids, see :func:`root_name`): what ``prune`` looks in.
        ids: every document's id, when read up front (what ``prune`` keeps).
        skipped: the files left out, each with its reason (no reader, excluded, a link to a
            file already read, an error with ``skip_errors``).
        hidden: hidden files and folders not entered.
    """

    def __init__(
        self,
        documents: Callable[[], Iterator[Document]],
        *,
        count: int | None = None,
        folders: Sequence[str] = (),
        ids: frozenset[str] | None = None,
        rereadable: bool = False,
        skipped: Sequence[Skipped] = (),
        hidden: int = 0,
    ) -> None:
        self._documents = documents
        self.count = count
        self.folders = list(folders)
        self.ids = ids
        self.rereadable = rereadable
        self.skipped = list(skipped)
        self.hidden = hidden

    @property
    def unread_files(self) -> set[str]:
        """The ids of the files left out by an error: ``prune`` keeps what they stored."""
        return {s.file for s in self.skipped if s.error}

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        exclude: Sequence[str] = (),
        skip_errors: bool = False,
        on_skip: Callable[[Skipped], None] | None = None,
    ) -> Corpus:
        """Files and folders (see :func:`discover`), read and checked now.

        Args:
            paths: files and folders.
            max_file_bytes: the most bytes a .txt / .md file, a JSONL line, or a converted
                PDF page or HTML / DOCX section may have.
            exclude: ``.gitignore``-style patterns of files and folders to leave out.
            skip_errors: leave out a file that cannot be read (reported in ``skipped``)
                instead of failing.
            on_skip: called with each file left out by an error, as it is found.

        Raises:
            InputError: a missing path, a file of another kind given by name, a file that is
                not UTF-8, cannot be converted or is larger than ``max_file_bytes``, a
                malformed JSONL line or metadata value, or an id given twice (the message
                names the file and line); with ``skip_errors``, also when no file is left.
            MissingDependencyError: a PDF / HTML / DOCX file given by name without the
                ``documents`` extra.
        """
        if max_file_bytes <= 0:
            raise InputError(f"max_file_bytes must be positive, got {max_file_bytes}")
        found = discover(
            [Path(p) for p in paths],
            max_file_bytes=max_file_bytes,
            exclude=exclude,
            skip_errors=skip_errors,
        )
        inventory = scan(found.sources, found.folders, skip_errors=skip_errors)
        if on_skip is not None:
            for skipped in inventory.skipped:
                on_skip(skipped)
        if not inventory.sources:
            first = inventory.skipped[0]
            raise InputError(
                f"none of the {len(found.sources):,} files found could be read (the first: "
                f"{first.reason}); nothing to index"
            )
        files = inventory.sources
        return cls(
            lambda: read(files),
            count=inventory.count,
            folders=found.folders,
            ids=frozenset(inventory.where),
            rereadable=True,
            skipped=[*found.skipped, *inventory.skipped],
            hidden=found.hidden,
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
        exclude: Sequence[str] = (),
        skip_errors: bool = False,
    ) -> Corpus:
        """A corpus from paths or from documents, whichever ``sources`` holds (not both);
        the keyword arguments apply to paths (see :meth:`from_paths`).

        Raises:
            TypeError: ``sources`` mixes paths and documents, or holds something else.
        """
        if isinstance(sources, (str, os.PathLike)):
            return cls.from_paths(
                [sources], max_file_bytes=max_file_bytes, exclude=exclude, skip_errors=skip_errors
            )
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
        return cls.from_paths(
            paths,  # type: ignore[arg-type]
            max_file_bytes=max_file_bytes,
            exclude=exclude,
            skip_errors=skip_errors,
        )

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
