"""``m3vdb.index``: the indexing job every surface runs (the ``m3vdb index`` command, the
LangChain / LlamaIndex / Haystack stores, Python code).

:func:`index` opens the target's collection and runs :func:`run` on it; a caller that has the
collection open already (a framework store, the command line with its own error wording)
calls :func:`run` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from m3vdb.connectors.base import Connector
from m3vdb.connectors.common import batched
from m3vdb.errors import InputError
from m3vdb.indexing.chunking import (
    DEFAULT_CHUNKING,
    Chunking,
    check_chunking,
    entry_capacity,
    token_counts,
    too_long_message,
)
from m3vdb.indexing.interrupts import InterruptGuard
from m3vdb.indexing.pipeline import IndexReport, check_dimensions, index_documents, prune_folders
from m3vdb.indexing.sources import DEFAULT_MAX_FILE_BYTES, Corpus, SourceLike
from m3vdb.indexing.target import opened_for_index
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import IndexSpec

#: An encoder, or a function that loads one when the run first has something to encode.
EncoderOrLoader = Encoder | Callable[[], Encoder]


def index(
    sources: SourceLike | Iterable[SourceLike] | Corpus,
    target: Any,
    *,
    collection: str | None = None,
    encoder: EncoderOrLoader | None = None,
    spec: IndexSpec | None = None,
    options: Any = None,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    resume: bool = True,
    prune: bool = False,
    recreate: bool = False,
    batch_size: int = 32,
    show_progress: bool = False,
    report: IndexReport | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    exclude: Sequence[str] = (),
    skip_errors: bool = False,
) -> IndexReport:
    """Indexes files, folders or documents into a collection, as ``m3vdb index`` does.

    Long documents become overlapping token windows ``ID#0, ID#1, ...`` linked to their
    document by ``parent_id`` (search with ``group=True`` to get one hit per document); a
    document stored with the same content (text, metadata, window settings) is skipped, a
    changed one is replaced as a whole; Ctrl-C never leaves half a document written, and the
    same call resumes.

    Example::

        import m3vdb
        report = m3vdb.index("notes/", "m3vdb.db", collection="notes",
                             encoder=m3vdb.M3Encoder("BAAI/bge-m3"))
        print(report.indexed, report.entries)

    Args:
        sources: a file or folder path (``.txt``, ``.md``, ``.jsonl``; ``.pdf``, ``.html``,
            ``.docx`` with ``m3vdb[documents]``), a ``Document``, or an
            iterable of either kind. Paths are read and checked before anything is written;
            documents are streamed.
        target: a database URL or native client (see ``m3vdb.connect``), or a collection
            already open (``m3vdb.connect(...)``; left open).
        collection: the collection name (required unless ``target`` is an open collection).
        encoder: an encoder (``M3Encoder``, ``RemoteEncoder``, any ``m3vdb.Encoder``) or a
            function returning one, called only when something needs encoding.
        spec: what a new collection stores; default: all three outputs at the encoder's
            dimensions. An existing collection is opened as it was built.
        options: the backend's options (``MilvusOptions``, ``QdrantOptions``...).
        chunking: how long documents are split (``Chunking(window, overlap)``); None refuses
            a document longer than one entry, before anything is written when the sources are
            paths.
        resume: skip documents stored with the same content (False re-encodes them).
        prune: delete the documents stored from the given folders whose files are gone
            (needs folder paths).
        recreate: drop the collection first.
        batch_size: documents per encode call and write.
        show_progress: a progress bar on stderr.
        report: the report to fill as the run goes (the caller still has the counts after an
            error or Ctrl-C); a new one by default.
        max_file_bytes: the most bytes a .txt / .md file, or a JSONL line, may have (10 MiB):
            a larger one is refused, naming it, before anything is written.
        exclude: ``.gitignore``-style patterns of files and folders to leave out of the
            folders given (``*.log``, ``drafts/``).
        skip_errors: leave out a file that cannot be read (not UTF-8, damaged, a bad JSONL
            line) instead of failing; ``report.skipped`` names each one and why.

    Returns:
        What was read, written, skipped and pruned.

    Raises:
        InputError: bad sources (named by file and line), a document too long with
            ``chunking=None``, ``prune`` without folders, no ``collection`` for a URL target,
            or no ``encoder`` when something needs encoding.
        SchemaMismatchError: the encoder's dimensions differ from the collection's.
        BackendError: the database failed.
        KeyboardInterrupt: Ctrl-C, after the batch being written was written completely.
    """
    corpus = (
        sources
        if isinstance(sources, Corpus)
        else Corpus.of(
            sources, max_file_bytes=max_file_bytes, exclude=exclude, skip_errors=skip_errors
        )
    )
    check_plan(corpus, chunking=chunking, prune=prune)
    if encoder is not None and not isinstance(encoder, Encoder):
        encoder = _loader(encoder)  # loaded once, whoever asks first
    report = report if report is not None else IndexReport()
    with _opened(target, collection, encoder, spec, options, recreate, report) as opened:
        return run(
            opened,
            corpus,
            encoder=encoder,
            chunking=chunking,
            resume=resume,
            prune=prune,
            batch_size=batch_size,
            show_progress=show_progress,
            report=report,
        )


def check_plan(corpus: Corpus, *, chunking: Chunking | None, prune: bool) -> None:
    """InputError for a run that cannot work, before anything is opened or written."""
    if prune and not corpus.folders:
        raise InputError(
            "prune deletes the documents of a directory whose files are gone: give the "
            "directory (m3vdb index DIR --prune), not single files or documents"
        )


def run(
    collection: Connector,
    corpus: Corpus,
    *,
    encoder: EncoderOrLoader | None,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    resume: bool = True,
    prune: bool = False,
    batch_size: int = 32,
    show_progress: bool = False,
    report: IndexReport | None = None,
    strict: bool = False,
) -> IndexReport:
    """Indexes ``corpus`` into an open ``collection`` (see :func:`index` for the arguments;
    ``strict``: see :func:`m3vdb.indexing.pipeline.index_documents`).

    Ctrl-C is held back while a batch is written, then raised as KeyboardInterrupt.
    """
    check_plan(corpus, chunking=chunking, prune=prune)
    report = report if report is not None else IndexReport()
    report.skipped = list(corpus.skipped)
    if chunking is not None:
        check_chunking(chunking, collection.spec.max_colbert_rows + 1)
    loader = _loader(encoder)
    if chunking is None and corpus.rereadable:
        _refuse_long(collection, loader(), corpus.documents())
    with InterruptGuard() as guard:
        index_documents(
            collection,
            loader,
            corpus.documents(),
            batch_size=batch_size,
            chunking=chunking,
            resume=resume,
            total=corpus.count,
            show_progress=show_progress,
            guard=guard,
            report=report,
            strict=strict,
        )
        if prune:
            report.pruned = prune_folders(
                collection, corpus.folders, set(corpus.ids or ()), guard, corpus.unread_files
            )
    return report


def _loader(encoder: EncoderOrLoader | None) -> Callable[[], Encoder]:
    """A function that returns the encoder, loading it once; InputError when there is none."""
    loaded: list[Encoder] = []

    def get() -> Encoder:
        if not loaded:
            if encoder is None:
                raise InputError(
                    "documents need encoding and no encoder was given: pass encoder="
                    "m3vdb.M3Encoder(...) (or a RemoteEncoder for an m3vdb serve)"
                )
            loaded.append(encoder if isinstance(encoder, Encoder) else encoder())
        return loaded[0]

    return get


def _refuse_long(collection: Connector, encoder: Encoder, documents: Iterable[Any]) -> None:
    """``chunking=None``: every document measured before anything is written."""
    check_dimensions(encoder, collection.spec)
    capacity = entry_capacity(collection, encoder)
    for batch in batched(documents, 64):
        for doc, n in zip(batch, token_counts(encoder, [d.text for d in batch])):
            if n > capacity:
                raise InputError(too_long_message(doc.id, n, capacity))


@contextmanager
def _opened(
    target: Any,
    collection: str | None,
    encoder: EncoderOrLoader | None,
    spec: IndexSpec | None,
    options: Any,
    recreate: bool,
    report: IndexReport,
) -> Iterator[Connector]:
    """The collection to write to: ``target`` itself when it is an open collection (left
    open), else the target's collection (:func:`m3vdb.indexing.target.opened_for_index`: a
    new one is created only once the model has loaded, and dropped again when the run fails
    before its first document is written)."""
    if hasattr(target, "upsert") and hasattr(target, "spec"):
        if recreate:
            raise InputError(
                "recreate=True needs a database target, not an open collection: drop it with "
                "m3vdb.drop(target, collection=...) first"
            )
        yield target
        return
    if not isinstance(collection, str) or not collection:
        raise InputError(
            f"collection must be a non-empty string when the target is a database, got "
            f"{collection!r}"
        )

    def prepare() -> IndexSpec:
        if spec is not None:
            return spec
        if encoder is None:
            return IndexSpec()
        return IndexSpec.for_encoder(encoder if isinstance(encoder, Encoder) else encoder())

    with opened_for_index(
        target,
        collection,
        spec=spec,
        prepare=prepare,
        written=lambda: report.indexed > 0,
        options=options,
        recreate=recreate,
    ) as opened:
        yield opened
