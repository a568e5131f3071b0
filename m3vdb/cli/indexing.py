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
then the new entries are written, in one step that Ctrl-C does not cut (see
:class:`InterruptGuard`).
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from m3vdb.connectors.base import Connector, SupportsScan
from m3vdb.connectors.common import batched
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.errors import InputError, UnsupportedCapabilityError

if TYPE_CHECKING:
    from m3vdb.encoder import M3Encoder
    from m3vdb.remote import RemoteEncoder

DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 64


@dataclass(frozen=True)
class Chunking:
    """How long documents become windows.

    Attributes:
        window: tokens per window, special tokens included.
        overlap: tokens shared by consecutive windows.
        automatic: split only documents longer than one entry holds (the default); False:
            split every document longer than ``window`` (``--chunk-tokens``).
    """

    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    automatic: bool = True

    @property
    def key(self) -> str:
        """The settings as they enter the content hash."""
        return f"{'auto' if self.automatic else 'fixed'}:{self.window}/{self.overlap}"


def default_overlap(window: int) -> int:
    """The overlap for ``--chunk-tokens N`` without ``--chunk-overlap``: 64 tokens, or a
    quarter of a small window's content."""
    return min(DEFAULT_OVERLAP, max(0, (window - 2) // 4))


def check_window(window: int, overlap: int) -> None:
    """InputError, in the options' words, when the window cannot be built."""
    if window < 3:
        raise InputError(
            f"--chunk-tokens {window} is too small: a window holds 2 special tokens, so use 3 "
            "or more (512 is common)"
        )
    if not 0 <= overlap < window - 2:
        raise InputError(
            f"--chunk-overlap {overlap} must be at least 0 and smaller than the {window - 2} "
            f"text tokens of a --chunk-tokens {window} window (the other 2 are special "
            f"tokens): use --chunk-overlap {default_overlap(window)}, or a larger --chunk-tokens"
        )


@dataclass
class IndexSummary:
    """What an indexing run did."""

    seen: int = 0  # documents read
    indexed: int = 0  # documents written (all their entries)
    replaced: int = 0  # of those, documents that replaced a stored, different version
    split: int = 0  # of those, documents stored as several windows
    entries: int = 0  # database entries written
    resumed: int = 0  # documents skipped: stored with the same content hash
    empty: list[str] = field(default_factory=list)  # ids skipped: blank text
    unindexable: list[str] = field(default_factory=list)  # ids with no sparse weight > 0
    pruned: int = 0  # documents deleted by --prune
    tokens: int = 0  # tokens encoded (special tokens included)
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class InterruptGuard:
    """Ctrl-C that never cuts a write: SIGINT raises KeyboardInterrupt at once while the job
    encodes, and is held back (then raised) while a batch's deletes and writes run, so the
    collection never holds half of a document."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A block that runs to its end; a Ctrl-C during it is raised after it."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending:
                self._pending = False
                raise KeyboardInterrupt


def entry_id(doc_id: str, n: int) -> str:
    """The id of window ``n`` of document ``doc_id``."""
    return f"{doc_id}#{n}"


def content_hash(doc: Document, chunking: Chunking | None) -> str:
    """What decides whether a stored document is current: its text, its metadata and the
    window settings."""
    payload = json.dumps(
        [doc.text, doc.metadata, chunking.key if chunking else "whole"],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def entry_capacity(connector: Connector, encoder: M3Encoder | RemoteEncoder) -> int:
    """The most tokens (special tokens included) one entry holds: n tokens give n - 1 ColBERT
    rows, and the encoder reads at most its ``max_length``."""
    spec = connector.spec
    capacity = int(encoder.max_length)
    if spec.colbert:
        capacity = min(capacity, spec.max_colbert_rows + 1)
    return capacity


def check_chunking(chunking: Chunking | None, capacity: int) -> None:
    """InputError when a ``--chunk-tokens`` window does not fit one entry."""
    if chunking is not None and not chunking.automatic and chunking.window > capacity:
        raise InputError(
            f"--chunk-tokens {chunking.window} does not fit one entry of this collection "
            f"(at most {capacity} tokens, special tokens included): use --chunk-tokens "
            f"{capacity} or less"
        )


def token_counts(encoder: M3Encoder | RemoteEncoder, texts: Sequence[str]) -> list[int]:
    """Tokens of each text, special tokens included: untruncated with a local model; with a
    served one (``--encoder-url``), cut at the model's length (enough to tell what is long)."""
    if not texts:
        return []
    if not hasattr(encoder, "tokenizer"):  # a RemoteEncoder: the server tokenizes
        return [len(x) for x in encoder.tokenize(list(texts))]
    return [len(x) for x in encoder.tokenize(list(texts), truncate=False)]  # type: ignore[call-arg]


def too_long_message(doc_id: str, tokens: int, capacity: int) -> str:
    return (
        f"document {doc_id!r} has {tokens:,} tokens; one entry of this collection holds at "
        f"most {capacity:,} (special tokens included), and --no-chunk refuses to split it: "
        "leave --no-chunk out to store it as overlapping windows"
    )


def index_documents(
    connector: Connector,
    encoder: M3Encoder | RemoteEncoder | Callable[[], M3Encoder | RemoteEncoder],
    documents: Iterable[Document],
    *,
    batch_size: int = 32,
    chunking: Chunking | None = Chunking(),
    resume: bool = True,
    total: int | None = None,
    show_progress: bool = True,
    guard: InterruptGuard | None = None,
    summary: IndexSummary | None = None,
) -> IndexSummary:
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
        show_progress: a progress bar on stderr (documents, tokens/s).
        guard: holds Ctrl-C back while a batch is written.
        summary: the summary to fill (so a caller still has the counts after an error).

    Raises:
        InputError: a document is too long and ``chunking`` is None.
    """
    from tqdm.auto import tqdm

    guard = guard or InterruptGuard()
    summary = summary if summary is not None else IndexSummary()
    model = _Model(encoder, connector, chunking)
    start = time.perf_counter()
    # delay: a run that ends (or fails) within a second draws no bar
    bar_options = dict(total=total, unit="doc", desc="index", delay=1.0)
    with tqdm(**bar_options, disable=not show_progress) as bar:
        for batch in batched(documents, batch_size):
            _index_batch(connector, model, batch, chunking, resume, guard, summary)
            summary.seconds = time.perf_counter() - start
            bar.update(len(batch))
            bar.set_postfix_str(f"{summary.tokens_per_second:,.0f} tok/s", refresh=False)
    summary.seconds = time.perf_counter() - start
    return summary


class _Model:
    """The encoder, loaded on first use, and the entry capacity it gives."""

    def __init__(
        self,
        encoder: M3Encoder | RemoteEncoder | Callable[[], M3Encoder | RemoteEncoder],
        connector: Connector,
        chunking: Chunking | None,
    ) -> None:
        self._source = encoder
        # an encoder has .encode; anything else is the function that loads one
        self._encoder: M3Encoder | RemoteEncoder | None = (
            encoder if hasattr(encoder, "encode") else None  # type: ignore[assignment]
        )
        self._connector = connector
        self._chunking = chunking
        self.capacity = 0

    def get(self) -> M3Encoder | RemoteEncoder:
        if self._encoder is None:
            self._encoder = self._source()  # type: ignore[operator]
        if not self.capacity:
            self.capacity = entry_capacity(self._connector, self._encoder)
            check_chunking(self._chunking, self.capacity)
        return self._encoder


def _index_batch(
    connector: Connector,
    model: _Model,
    batch: Sequence[Document],
    chunking: Chunking | None,
    resume: bool,
    guard: InterruptGuard,
    summary: IndexSummary,
) -> None:
    summary.seen += len(batch)
    hashes = {d.id: content_hash(d, chunking) for d in batch}
    stored = _stored_state(connector, [d.id for d in batch])
    todo: list[Document] = []
    skipped: set[str] = set()
    for doc in batch:
        state = stored.get(doc.id)
        if resume and state is not None and state.complete and state.hash == hashes[doc.id]:
            summary.resumed += 1
            skipped.add(doc.id)
        elif not doc.text.strip():
            summary.empty.append(doc.id)
        else:
            todo.append(doc)
    pairs: list[tuple[Document, M3Embedding]] = []
    written: set[str] = set()
    split = tokens = 0
    if todo:
        encoder = model.get()
        pairs, written, split, tokens = _encode(encoder, todo, hashes, chunking, model.capacity)
    summary.unindexable += [d.id for d in todo if d.id not in written]
    # a stored document not skipped is rewritten, or now empty: all its entries go
    stale_parents = [d.id for d in batch if d.id in stored and d.id not in skipped]
    with guard.critical():
        stale = _stale_ids(connector, stored, stale_parents)
        if stale:
            connector.delete(stale)
        if pairs:
            connector.upsert(pairs, batch_size=len(pairs))
        # counted inside the block: a Ctrl-C held back during the write is raised at its
        # end, and the interruption message must count this batch as written
        summary.indexed += len(written)
        summary.replaced += sum(1 for d in written if d in stored)
        summary.split += split
        summary.entries += len(pairs)
        summary.tokens += tokens


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


def _encode(
    encoder: M3Encoder | RemoteEncoder,
    docs: Sequence[Document],
    hashes: dict[str, str],
    chunking: Chunking | None,
    capacity: int,
) -> tuple[list[tuple[Document, M3Embedding]], set[str], int, int]:
    """(entries, ids of the documents written, how many were split, tokens encoded)."""
    if not docs:
        return [], set(), 0, 0
    spec_outputs = dict(dense=True, sparse=True, colbert=True)
    counts = token_counts(encoder, [d.text for d in docs])
    limit = capacity
    if chunking is not None and not chunking.automatic:
        limit = min(capacity, chunking.window)
    whole = [(d, n) for d, n in zip(docs, counts) if n <= limit]
    long = [(d, n) for d, n in zip(docs, counts) if n > limit]
    if chunking is None and long:
        doc, n = long[0]
        raise InputError(too_long_message(doc.id, n, capacity))
    if long and not hasattr(encoder, "encode_windows"):  # a RemoteEncoder
        doc, n = long[0]
        raise InputError(
            f"document {doc.id!r} has {n:,} tokens, more than one entry holds ({capacity:,}); "
            "splitting it into windows needs the model's tokenizer here, and --encoder-url "
            "loads none: index long documents without --encoder-url"
        )
    entries: dict[str, list[tuple[Document, M3Embedding]]] = {}
    tokens = 0
    if whole:
        embs = encoder.encode([d.text for d, _ in whole], **spec_outputs)
        for (doc, n), emb in zip(whole, embs):
            tokens += n
            if emb.sparse:  # the databases refuse an all-zero sparse vector
                meta = {**doc.metadata, "parent_id": doc.id, "chunk": 0, "chunks": 1}
                meta["content_hash"] = hashes[doc.id]
                entries[doc.id] = [(Document(doc.id, doc.text, meta), emb)]
    split = 0
    if long:
        assert chunking is not None
        windows = encoder.encode_windows(  # type: ignore[union-attr]  # a RemoteEncoder refused above
            [d.text for d, _ in long],
            window_tokens=chunking.window,
            overlap_tokens=chunking.overlap,
            **spec_outputs,
        )
        per_doc: list[list[Any]] = [[] for _ in long]
        for w in windows:
            tokens += w.token_end - w.token_start + 2
            if w.embedding.sparse:  # a window of special tokens only cannot be stored
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


def prune(
    connector: Connector, folders: Sequence[str], keep: set[str], guard: InterruptGuard
) -> int:
    """Deletes the documents stored from ``folders`` (by their ``source_folders``) whose id
    is not in ``keep``; returns how many documents were deleted."""
    pruned: set[str] = set()
    for folder in folders:
        stale: dict[str, str] = {}  # entry id -> its document's id; ids only, not texts
        for doc in scan(connector, {"source_folders": folder}):
            parent = str(doc.metadata.get("parent_id", doc.id))
            if parent not in keep:
                stale[doc.id] = parent
        if stale:
            with guard.critical():
                connector.delete(sorted(stale))
            pruned |= set(stale.values())
    return len(pruned)
