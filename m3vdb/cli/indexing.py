"""The indexing job: stream documents in batches, skip what is already stored, optionally
split them into token windows, encode, write, and account for it all."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from m3vdb import Document, InputError
from m3vdb.connectors import Connector
from m3vdb.connectors.common import batched
from m3vdb.encoder import M3Embedding, M3Encoder
from m3vdb.remote import RemoteEncoder
from m3vdb.schemas.spec import IndexSpec


@dataclass(frozen=True)
class Chunking:
    """Token windows of ``tokens`` (special tokens included) sharing ``overlap`` tokens."""

    tokens: int
    overlap: int = 64


@dataclass
class IndexSummary:
    """What an indexing run did."""

    seen: int = 0  # documents read
    indexed: int = 0  # documents written (all their chunks)
    entries: int = 0  # database entries written (= indexed without chunking)
    resumed: int = 0  # documents skipped because they were already stored
    empty: int = 0  # documents skipped: empty text, or no token with a sparse weight
    tokens: int = 0  # tokens encoded (special tokens included)
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def chunk_id(doc_id: str, n: int) -> str:
    """The id of the ``n``-th chunk of document ``doc_id``."""
    return f"{doc_id}#{n}"


def index_documents(
    connector: Connector,
    encoder: M3Encoder | RemoteEncoder,
    documents: Iterable[Document],
    *,
    batch_size: int = 32,
    chunking: Chunking | None = None,
    resume: bool = True,
    total: int | None = None,
    show_progress: bool = True,
) -> IndexSummary:
    """Encodes and writes ``documents`` batch by batch.

    Resuming: before encoding a batch, the ids already stored are looked up with
    ``connector.get`` (one request per batch) and those documents are skipped, so running
    the same command again after an interruption continues where it stopped. A chunked
    document counts as stored when its first and its last chunk are (chunks of one
    document are written in one request, after the chunks of the previous documents).

    Args:
        connector: the collection to write to.
        encoder: the encoder; the connector's spec says which outputs to compute.
        documents: the documents, consumed lazily.
        batch_size: documents per batch (each batch is one encode call and one write).
        chunking: split each document into token windows; chunk ``n`` of document ``d`` gets
            id ``d#n`` and metadata ``parent_id``, ``chunk``, ``chunks``, ``char_start``,
            ``char_end`` besides the document's own.
        resume: skip documents already stored (False re-encodes and overwrites them).
        total: the number of documents, for the progress bar.
        show_progress: a progress bar on stderr (documents, tokens/s).

    Raises:
        InputError: a document is too long for the collection without chunking, or the
            chunking does not fit the collection.
    """
    spec = connector.spec
    if chunking is not None and not isinstance(encoder, M3Encoder):
        raise InputError(
            "--chunk-tokens needs the model's tokenizer here to cut token windows, and "
            "--encoder-url loads no model: index without --chunk-tokens, or drop --encoder-url"
        )
    if chunking is not None and chunking.tokens - 1 > spec.max_colbert_rows:
        raise InputError(
            f"--chunk-tokens {chunking.tokens} gives up to {chunking.tokens - 1} ColBERT rows per "
            f"chunk; the collection holds at most {spec.max_colbert_rows}: use --chunk-tokens "
            f"{spec.max_colbert_rows + 1} or less"
        )
    summary = IndexSummary()
    start = time.perf_counter()
    with tqdm(total=total, unit="doc", desc="index", disable=not show_progress) as bar:
        for batch in batched(documents, batch_size):
            summary.seen += len(batch)
            stored = _stored(connector, batch, chunked=chunking is not None) if resume else set()
            todo = [d for d in batch if d.id not in stored]
            summary.resumed += len(batch) - len(todo)
            nonempty = [d for d in todo if d.text.strip()]
            summary.empty += len(todo) - len(nonempty)
            if nonempty:
                pairs, docs, tokens = (
                    _chunk_pairs(encoder, nonempty, chunking, spec)
                    if chunking is not None and isinstance(encoder, M3Encoder)
                    else _whole_pairs(encoder, nonempty, spec)
                )
                kept = _drop_unindexable(pairs, spec.sparse)
                skipped_docs = docs - {_parent(d.id, chunking) for d, _ in kept}
                summary.empty += len(skipped_docs)
                if kept:
                    connector.upsert(kept, batch_size=len(kept))
                summary.indexed += len(nonempty) - len(skipped_docs)
                summary.entries += len(kept)
                summary.tokens += tokens
            summary.seconds = time.perf_counter() - start
            bar.update(len(batch))
            bar.set_postfix_str(f"{summary.tokens_per_second:,.0f} tok/s", refresh=False)
    summary.seconds = time.perf_counter() - start
    return summary


def _parent(entry_id: str, chunking: Chunking | None) -> str:
    return entry_id.rsplit("#", 1)[0] if chunking is not None else entry_id


def _stored(connector: Connector, batch: Sequence[Document], *, chunked: bool) -> set[str]:
    """Ids of the batch's documents that are completely stored."""
    if not chunked:
        return {d.id for d in connector.get([d.id for d in batch])}
    firsts = connector.get([chunk_id(d.id, 0) for d in batch])
    lasts: dict[str, str] = {}
    for first in firsts:
        chunks = first.metadata.get("chunks")
        parent = first.metadata.get("parent_id")
        if isinstance(chunks, int) and isinstance(parent, str):
            lasts[chunk_id(parent, chunks - 1)] = parent
    return {lasts[d.id] for d in connector.get(list(lasts))}


def _whole_pairs(
    encoder: M3Encoder | RemoteEncoder, docs: Sequence[Document], spec: IndexSpec
) -> tuple[list[tuple[Document, M3Embedding]], set[str], int]:
    max_rows = spec.max_colbert_rows
    texts = [d.text for d in docs]
    lengths = [len(ids) for ids in encoder.tokenize(texts)]
    for doc, n in zip(docs, lengths):
        # n tokens give n - 1 ColBERT rows (the CLS row is not kept)
        if n - 1 > max_rows:
            raise InputError(
                f"document {doc.id!r} has {n} tokens; the collection holds at most "
                f"{max_rows + 1} per entry: index with --chunk-tokens 512 (and --chunk-overlap) "
                "to split long documents into windows"
            )
    embs = encoder.encode(texts, dense=spec.dense, sparse=spec.sparse, colbert=spec.colbert)
    return list(zip(docs, embs)), {d.id for d in docs}, sum(lengths)


def _chunk_pairs(
    encoder: M3Encoder, docs: Sequence[Document], chunking: Chunking, spec: IndexSpec
) -> tuple[list[tuple[Document, M3Embedding]], set[str], int]:
    windows = encoder.encode_windows(
        [d.text for d in docs],
        window_tokens=chunking.tokens,
        overlap_tokens=chunking.overlap,
        dense=spec.dense,
        sparse=spec.sparse,
        colbert=spec.colbert,
    )
    counts = [0] * len(docs)
    for w in windows:
        counts[w.text_index] += 1
    pairs: list[tuple[Document, M3Embedding]] = []
    seen = [0] * len(docs)
    for w in windows:
        doc = docs[w.text_index]
        n = seen[w.text_index]
        seen[w.text_index] += 1
        metadata = {
            **doc.metadata,
            "parent_id": doc.id,
            "chunk": n,
            "chunks": counts[w.text_index],
            "char_start": w.char_start,
            "char_end": w.char_end,
        }
        pairs.append((Document(chunk_id(doc.id, n), w.text, metadata), w.embedding))
    tokens = sum(w.token_end - w.token_start + 2 for w in windows)
    return pairs, {d.id for d in docs}, tokens


def _drop_unindexable(
    pairs: list[tuple[Document, M3Embedding]], sparse: bool
) -> list[tuple[Document, M3Embedding]]:
    # A text made only of special or unknown tokens has no sparse weight > 0, and the
    # databases refuse an all-zero sparse vector: skip (and count) it instead of failing.
    if not sparse:
        return pairs
    return [(d, e) for d, e in pairs if e.sparse]
