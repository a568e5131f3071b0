"""The indexing job: stream documents in batches, skip what is stored unchanged, split long
documents into token windows, encode, replace each document as a whole, and account for it.

Entries. A document that fits in one entry is stored under its own id; a longer one is
stored as token windows ``DOC#0, DOC#1, ...`` (each window's text, its character span and
its position). Every entry carries ``parent_id`` (the document's id), ``chunk`` / ``chunks``
(its position and the number of entries of the document) and ``content_hash`` (a hash of the
text, the metadata and the window settings), so the entries of a document are found with the
portable filter ``{"parent_id": ID}``.

Resume. A document is skipped when its first entry (``DOC`` or ``DOC#0``) and its last entry
are stored with the same ``content_hash``; any other stored state (changed text, changed
windows, a run cut short) is replaced as a whole: every entry of the document is deleted,
then the new entries are written. Ctrl-C acts between two write slices of a fraction of a
second (``writes.py``): a document interrupted halfway has its new entries deleted again, so
the collection holds every document whole or not at all, and the same run resumes.

Progress (``progress.py``) moves after every forward pass and every write slice.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

from m3vdb.connectors.base import Connector, SupportsScan
from m3vdb.connectors.common import batched
from m3vdb.errors import InputError, SchemaMismatchError, UnsupportedCapabilityError
from m3vdb.indexing.chunking import (
    BOOKKEEPING_KEYS,
    DEFAULT_CHUNKING,
    Chunking,
    check_chunking,
    content_hash,
    entry_capacity,
    entry_id,
    token_counts,
    too_long_message,
)
from m3vdb.indexing.interrupts import InterruptGuard
from m3vdb.indexing.progress import Progress
from m3vdb.indexing.writes import SliceSizer, write_whole
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import IndexSpec


@dataclass
class IndexReport:
    """What an indexing run did (filled as it goes: after an error or Ctrl-C it counts what
    was written completely)."""

    seen: int = 0  # documents read
    indexed: int = 0  # documents written (all their entries)
    replaced: int = 0  # of those, documents that replaced a stored, different version
    split: int = 0  # of those, documents stored as several windows
    entries: int = 0  # database entries written
    resumed: int = 0  # documents skipped: stored with the same content hash
    empty: list[str] = field(default_factory=list)  # ids skipped: blank text
    unindexable: list[str] = field(default_factory=list)  # ids with no sparse weight > 0
    pruned: int = 0  # documents deleted by --prune
    skipped: list[Any] = field(default_factory=list)  # files not read (sources.Skipped)
    tokens: int = 0  # tokens encoded (special tokens included)
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def index_documents(
    connector: Connector,
    encoder: Encoder | Callable[[], Encoder],
    documents: Iterable[Document],
    *,
    batch_size: int = 32,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    resume: bool = True,
    total: int | None = None,
    show_progress: bool = True,
    guard: InterruptGuard | None = None,
    report: IndexReport | None = None,
    strict: bool = False,
) -> IndexReport:
    """Encodes and writes ``documents`` batch by batch (see the module docstring).

    Args:
        connector: the collection to write to.
        encoder: the encoder, or a function that loads it: called only when a batch has
            something to encode (a re-run where nothing changed never loads the model).
        documents: the documents, consumed lazily.
        batch_size: documents per batch (each batch is one encode call and one write).
        chunking: how long documents are split; None refuses a document longer than one
            entry.
        resume: skip documents stored with the same content hash (False rewrites them).
        total: the number of documents, for the progress bar.
        show_progress: a progress bar on stderr (documents, the stage, tokens encoded).
        guard: holds Ctrl-C back while a write slice runs.
        report: the report to fill (so a caller still has the counts after an error).
        strict: a blank document, or one with no indexable token, is an InputError before its
            batch is written (what a store's caller expects), instead of being skipped and
            reported (what a folder run wants); metadata keys the indexer writes are refused
            either way.

    Raises:
        InputError: a document is too long and ``chunking`` is None.
    """
    guard = guard or InterruptGuard()
    report = report if report is not None else IndexReport()
    model = _Model(encoder, connector, chunking)
    start = time.perf_counter()
    sizer = SliceSizer()
    with Progress(total, enabled=show_progress) as progress:
        for batch in batched(documents, batch_size):
            done = report.indexed
            _index_batch(
                connector, model, batch, chunking, resume, guard, report, strict, progress, sizer
            )
            report.seconds = time.perf_counter() - start
            # written documents moved the bar as they went; the skipped ones move it now
            progress.documents(len(batch) - (report.indexed - done))
    report.seconds = time.perf_counter() - start
    return report


def check_dimensions(encoder: Encoder, spec: IndexSpec) -> None:
    """SchemaMismatchError when ``encoder`` does not produce the dimensions of the outputs
    the collection stores."""
    stored = [n for n in ("dense", "colbert") if getattr(spec, n)]
    found = tuple(int(getattr(encoder, f"{n}_dim")) for n in stored)
    wanted = tuple(int(getattr(spec, f"{n}_dim")) for n in stored)
    if found != wanted:
        raise SchemaMismatchError(
            f"the encoder produces {'/'.join(stored)} dimensions {found}, the collection stores "
            f"{wanted}; use the model the collection was built with"
        )


class _Model:
    """The encoder, loaded on first use, and the entry capacity it gives."""

    def __init__(
        self,
        encoder: Encoder | Callable[[], Encoder],
        connector: Connector,
        chunking: Chunking | None,
    ) -> None:
        self._source = encoder
        # an encoder has .encode; anything else is the function that loads one
        self._encoder: Encoder | None = (
            encoder if hasattr(encoder, "encode") else None  # type: ignore[assignment]
        )
        self._connector = connector
        self._chunking = chunking
        self.capacity = 0
        self.reports_progress = False  # its encode methods take progress=

    def get(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self._source()  # type: ignore[operator]
        if not self.capacity:
            check_dimensions(self._encoder, self._connector.spec)
            self.capacity = entry_capacity(self._connector, self._encoder)
            check_chunking(self._chunking, self.capacity)
            self.reports_progress = "progress" in inspect.signature(self._encoder.encode).parameters
        return self._encoder


def _index_batch(
    connector: Connector,
    model: _Model,
    batch: Sequence[Document],
    chunking: Chunking | None,
    resume: bool,
    guard: InterruptGuard,
    report: IndexReport,
    strict: bool,
    progress: Progress,
    sizer: SliceSizer,
) -> None:
    refuse_bookkeeping_keys(batch)
    report.seen += len(batch)
    hashes = {d.id: content_hash(d, chunking) for d in batch}
    stored = _stored_state(connector, [d.id for d in batch])
    todo: list[Document] = []
    skipped: set[str] = set()
    for doc in batch:
        state = stored.get(doc.id)
        if resume and state is not None and state.complete and state.hash == hashes[doc.id]:
            report.resumed += 1
            skipped.add(doc.id)
        elif not doc.text.strip():
            if strict:
                raise InputError(
                    f"document {doc.id!r} has an empty or whitespace-only text: nothing to "
                    "index; drop it or give it text (nothing of this batch was written)"
                )
            report.empty.append(doc.id)
        else:
            todo.append(doc)
    pairs: list[tuple[Document, M3Embedding]] = []
    written: set[str] = set()
    tokens = 0
    if todo:
        encoder = model.get()
        progress.stage("encoding")
        pairs, written, _split, tokens = encode_entries(
            encoder,
            todo,
            hashes,
            chunking,
            model.capacity,
            connector.spec,
            progress.encoded if model.reports_progress else None,
        )
        if not model.reports_progress:
            progress.encoded(tokens)
        report.tokens += tokens
    unindexable = [d.id for d in todo if d.id not in written]
    if strict and unindexable:
        raise InputError(
            f"document {unindexable[0]!r} has no sparse weight > 0 (all its tokens are special "
            "or unknown); databases reject an all-zero sparse vector: drop the document or "
            "store it in a collection without sparse (nothing of this batch was written)"
        )
    report.unindexable += unindexable
    # a stored document not skipped is rewritten, or now empty: all its entries go
    stale_parents = [d.id for d in batch if d.id in stored and d.id not in skipped]
    _refuse_collisions(connector, pairs)
    progress.stage("writing")
    with guard.critical():
        stale = _stale_ids(connector, stored, stale_parents)
        if stale:
            connector.delete(stale)
    # each document whole or not at all; Ctrl-C acts between write slices (writes.py)
    per_doc: dict[str, list[tuple[Document, M3Embedding]]] = {}
    for pair in pairs:
        per_doc.setdefault(str(pair[0].metadata["parent_id"]), []).append(pair)
    for doc_id, entries in per_doc.items():

        def complete(doc_id: str = doc_id, entries: list[Any] = entries) -> None:
            # inside the last slice's protected block: a Ctrl-C held back during it is
            # raised after it, and the interruption message must count this document
            report.indexed += 1
            report.replaced += int(doc_id in stored)
            report.split += int(entries[0][0].id != doc_id)  # stored as windows DOC#N
            report.entries += len(entries)
            progress.documents(1)

        write_whole(
            connector, entries, guard, sizer, on_complete=complete, on_slice=progress.written
        )


def refuse_bookkeeping_keys(batch: Sequence[Document]) -> None:
    """InputError for a document whose metadata has a key the indexer writes itself (other
    malformed documents are refused by the collection's own validation)."""
    for doc in batch:
        metadata = getattr(doc, "metadata", None)
        taken = sorted(set(metadata) & set(BOOKKEEPING_KEYS)) if isinstance(metadata, dict) else []
        if taken:
            raise InputError(
                f"document {doc.id!r}: metadata keys {taken} are written by the indexer itself "
                "(windows and resume bookkeeping); rename them"
            )


def _refuse_collisions(connector: Connector, pairs: Sequence[tuple[Document, M3Embedding]]) -> None:
    """InputError, before the batch is written, when an entry about to be written would
    overwrite an entry of ANOTHER document: a document whose id looks like a window id
    (``a.md#0``) against the windows of ``a.md``, in this batch or stored by an earlier one.
    Window ids are ``DOC#N``; the two documents must not share that id space."""
    owners: dict[str, str] = {}
    for doc, _ in pairs:
        owner = str(doc.metadata["parent_id"])
        other = owners.setdefault(doc.id, owner)
        if other != owner:
            raise InputError(_collision_message(doc.id, owner, other))
    if not owners:
        return
    for entry in connector.get(list(owners)):
        stored_owner = entry.metadata.get("parent_id", entry.id)
        if stored_owner != owners[entry.id]:
            raise InputError(_collision_message(entry.id, owners[entry.id], str(stored_owner)))


def _collision_message(entry: str, writer: str, holder: str) -> str:
    def name(doc_id: str) -> str:
        return (
            f"window {entry!r} of document {doc_id!r}"
            if doc_id != entry
            else f"document {doc_id!r}"
        )

    return (
        f"{name(writer)} would overwrite {name(holder)}: long documents are stored as windows "
        "DOC#0, DOC#1, ..., so an id of the form DOC#N belongs to document DOC's windows. "
        "Rename one of the two (nothing of this batch was written)"
    )


@dataclass(frozen=True)
class _Stored:
    hash: str | None
    ids: tuple[str, ...]  # entries found by id
    complete: bool


def _stored_state(connector: Connector, doc_ids: Sequence[str]) -> dict[str, _Stored]:
    """What is stored of each document: its first entry (``DOC`` or ``DOC#0``), and whether
    its last entry is there with the same hash."""
    wanted = set(doc_ids)
    firsts: dict[str, Document] = {}
    for entry in connector.get([*doc_ids, *(entry_id(i, 0) for i in doc_ids)]):
        parent = entry.metadata.get("parent_id", entry.id)
        if parent in wanted and parent not in firsts:
            firsts[parent] = entry
    lasts_wanted: dict[str, str] = {}
    for parent, first in firsts.items():
        chunks = first.metadata.get("chunks")
        if isinstance(chunks, int) and chunks > 1:
            lasts_wanted[entry_id(parent, chunks - 1)] = parent
    lasts = {e.id: e for e in connector.get(list(lasts_wanted))} if lasts_wanted else {}
    out: dict[str, _Stored] = {}
    for parent, first in firsts.items():
        digest = first.metadata.get("content_hash")
        chunks = first.metadata.get("chunks")
        if not isinstance(digest, str) or not isinstance(chunks, int) or chunks < 1:
            # written by an older m3vdb, or not by m3vdb index: replaced as a whole
            out[parent] = _Stored(None, (first.id,), complete=False)
            continue
        ids = (first.id, *(entry_id(parent, n) for n in range(1, chunks)))
        last = lasts.get(entry_id(parent, chunks - 1)) if chunks > 1 else first
        complete = last is not None and last.metadata.get("content_hash") == digest
        out[parent] = _Stored(digest, ids, complete)
    return out


def _stale_ids(
    connector: Connector, stored: dict[str, _Stored], parents: Sequence[str]
) -> list[str]:
    """Every entry of these documents: the ids their first entry names, and whatever else
    points at them by ``parent_id`` (windows of an older run with other settings)."""
    if not parents:
        return []
    ids = {i for p in parents for i in stored[p].ids}
    ids |= {doc.id for doc in scan(connector, {"parent_id": {"in": list(parents)}})}
    return sorted(ids)


def scan(connector: Connector, flt: dict[str, Any]) -> Iterator[Document]:
    """Every entry matching ``flt``, streamed: the connector's paged listing by filter."""
    if not isinstance(connector, SupportsScan):
        raise UnsupportedCapabilityError(
            f"{type(connector).__name__} cannot list entries by filter (no scan method), which "
            "replacing and pruning documents need; use a connector of m3vdb.connectors"
        )
    return connector.scan(flt)


def pending_documents(
    connector: Connector,
    documents: Iterable[Document],
    *,
    batch_size: int = 256,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    resume: bool = True,
    guard: InterruptGuard | None = None,
    report: IndexReport,
) -> Iterator[Document]:
    """The documents that need encoding, for a run that encodes elsewhere (the Ray path):
    the first half of the indexing job, batch by batch. A document stored with the same
    content hash is skipped (``report.resumed``); a blank one is reported (``report.empty``)
    and whatever is stored of it deleted, as :func:`index_documents` does; every other
    document is yielded, to be encoded and then written by :func:`write_encoded`.
    """
    guard = guard or InterruptGuard()
    for batch in batched(documents, batch_size):
        refuse_bookkeeping_keys(batch)
        report.seen += len(batch)
        hashes = {d.id: content_hash(d, chunking) for d in batch}
        stored = _stored_state(connector, [d.id for d in batch])
        emptied: list[str] = []
        for doc in batch:
            state = stored.get(doc.id)
            if resume and state is not None and state.complete and state.hash == hashes[doc.id]:
                report.resumed += 1
            elif not doc.text.strip():
                report.empty.append(doc.id)
                if state is not None:
                    emptied.append(doc.id)
            else:
                yield doc
        if emptied:
            with guard.critical():
                connector.delete(_stale_ids(connector, stored, emptied))


def write_encoded(
    connector: Connector,
    pairs: Sequence[tuple[Document, M3Embedding]],
    *,
    unindexable: Sequence[str] = (),
    tokens: int = 0,
    guard: InterruptGuard | None = None,
    report: IndexReport,
) -> None:
    """Writes entries encoded elsewhere (by :func:`encode_entries` in a Ray actor), the
    second half of the indexing job: a stored, changed document is replaced as a whole.

    The entries of one document come in order (``chunk`` 0 first) but may arrive in several
    calls, from several writers at once: so the call that holds a document's first entry
    deletes only those stored entries of it that the new version does not overwrite (the
    new ids are known from ``chunks``), and nothing is deleted that another call writes.
    Until its last entry is written, a document counts as incomplete and the next run
    replaces it (resume checks the first and the last entry).

    Args:
        pairs: the entries (their metadata as :func:`encode_entries` makes it).
        unindexable: documents encoded without a sparse weight > 0: nothing to store, and
            whatever is stored of them is deleted.
        tokens: tokens encoded for these entries (for the report).
        guard: holds Ctrl-C back while the batch is written (None in a Ray worker).
    """
    heads = {str(d.metadata["parent_id"]): d for d, _ in pairs if d.metadata.get("chunk") == 0}
    parents = [*heads, *(i for i in unindexable if i not in heads)]
    stored = _stored_state(connector, parents) if parents else {}
    keep: set[str] = set()  # ids the new versions write
    for parent, head in heads.items():
        chunks = int(head.metadata.get("chunks", 1))
        if head.id == parent:
            keep.add(parent)
        else:
            keep.update(entry_id(parent, n) for n in range(chunks))
    _refuse_collisions(connector, pairs)
    with guard.critical() if guard is not None else nullcontext():
        stale = [i for i in _stale_ids(connector, stored, list(stored)) if i not in keep]
        if stale:
            connector.delete(stale)
        if pairs:
            connector.upsert(list(pairs), batch_size=len(pairs))
        report.indexed += len(heads)
        report.replaced += sum(1 for p in heads if p in stored)
        report.split += sum(1 for p, d in heads.items() if d.id != p)
        report.entries += len(pairs)
        report.tokens += tokens
        report.unindexable += list(unindexable)


def encode_entries(
    encoder: Encoder,
    docs: Sequence[Document],
    hashes: dict[str, str],
    chunking: Chunking | None,
    capacity: int,
    spec: IndexSpec,
    progress: Callable[[int], None] | None = None,
    *,
    doc_tokens: dict[str, int] | None = None,
) -> tuple[list[tuple[Document, M3Embedding]], set[str], int, int]:
    """(entries, ids of the documents written, how many were split, tokens encoded): the
    entries ``m3vdb index`` stores for these (non-blank) documents, shared with
    ``m3vdb encode`` and the Ray path. ``hashes``: each document's :func:`content_hash`;
    ``doc_tokens``, when given, receives the tokens encoded per document id.

    Only the outputs the collection stores are computed. An encoder that cannot tokenize (a
    dense embedding model behind a framework's interface) stores every document whole."""
    if not docs:
        return [], set(), 0, 0
    spec_outputs = dict(dense=spec.dense, sparse=spec.sparse, colbert=spec.colbert)
    if hasattr(encoder, "tokenize"):
        counts = token_counts(encoder, [d.text for d in docs])
    else:
        counts = [0] * len(docs)  # unknown: whole, as the encoder itself truncates
    limit = capacity
    if chunking is not None and not chunking.automatic:
        limit = min(capacity, chunking.window)
    whole = [(d, n) for d, n in zip(docs, counts) if n <= limit]
    long = [(d, n) for d, n in zip(docs, counts) if n > limit]
    if chunking is None and long:
        doc, n = long[0]
        raise InputError(too_long_message(doc.id, n, capacity))
    if long and not hasattr(encoder, "encode_windows"):  # a framework's embedding model
        doc, n = long[0]
        raise InputError(
            f"document {doc.id!r} has {n:,} tokens, more than one entry holds ({capacity:,}); "
            f"{type(encoder).__name__} cannot split it into windows (no encode_windows): use "
            "m3vdb.M3Encoder or a RemoteEncoder"
        )
    entries: dict[str, list[tuple[Document, M3Embedding]]] = {}
    tokens = 0
    if whole:
        extra: dict[str, Any] = {"progress": progress} if progress is not None else {}
        embs = encoder.encode([d.text for d, _ in whole], **spec_outputs, **extra)
        for (doc, n), emb in zip(whole, embs):
            tokens += n
            if doc_tokens is not None:
                doc_tokens[doc.id] = n
            if emb.sparse or not spec.sparse:  # the databases refuse an all-zero sparse vector
                meta = {**doc.metadata, "parent_id": doc.id, "chunk": 0, "chunks": 1}
                meta["content_hash"] = hashes[doc.id]
                entries[doc.id] = [(Document(doc.id, doc.text, meta), emb)]
    split = 0
    if long:
        assert chunking is not None
        windows = cast(Any, encoder).encode_windows(  # M3Encoder or RemoteEncoder
            [d.text for d, _ in long],
            window_tokens=chunking.window,
            overlap_tokens=chunking.overlap,
            **spec_outputs,
            **({"progress": progress} if progress is not None else {}),
        )
        per_doc: list[list[Any]] = [[] for _ in long]
        for w in windows:
            tokens += w.token_end - w.token_start + 2
            if doc_tokens is not None:
                doc_id = long[w.text_index][0].id
                doc_tokens[doc_id] = doc_tokens.get(doc_id, 0) + w.token_end - w.token_start + 2
            # a window of special tokens only has no sparse weight and cannot be stored
            if w.embedding.sparse or not spec.sparse:
                per_doc[w.text_index].append(w)
        for (doc, _), kept in zip(long, per_doc):
            if not kept:
                continue
            split += 1
            entries[doc.id] = [
                (
                    Document(
                        entry_id(doc.id, n),
                        w.text,
                        {
                            **doc.metadata,
                            "parent_id": doc.id,
                            "chunk": n,
                            "chunks": len(kept),
                            "char_start": w.char_start,
                            "char_end": w.char_end,
                            "content_hash": hashes[doc.id],
                        },
                    ),
                    w.embedding,
                )
                for n, w in enumerate(kept)
            ]
    # input order, and each document's entries first to last (resume checks the last)
    pairs = [pair for d in docs for pair in entries.get(d.id, [])]
    return pairs, set(entries), split, tokens


def prune_folders(
    connector: Connector,
    folders: Sequence[str],
    keep: set[str],
    guard: InterruptGuard,
    keep_files: set[str] | frozenset[str] = frozenset(),
) -> int:
    """Deletes the documents stored from ``folders`` (by their ``source_folders``) whose id
    is not in ``keep`` and whose ``source_file`` is not in ``keep_files`` (files that could
    not be read this time are not gone); returns how many documents were deleted."""
    pruned: set[str] = set()
    for folder in folders:
        stale: dict[str, str] = {}  # entry id -> its document's id; ids only, not texts
        for doc in scan(connector, {"source_folders": folder}):
            parent = str(doc.metadata.get("parent_id", doc.id))
            if parent not in keep and doc.metadata.get("source_file") not in keep_files:
                stale[doc.id] = parent
        if stale:
            with guard.critical():
                connector.delete(sorted(stale))
            pruned |= set(stale.values())
    return len(pruned)
