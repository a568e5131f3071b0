"""What every connector shares: validating embeddings against the IndexSpec, encoding what
needs encoding, streaming in batches, and retrying transient failures with backoff.

Database modules call these; nothing here imports a database client.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

from connectors.base import UpsertItem
from encoder.data import Document, M3Embedding
from encoder.errors import BackendError, InputError
from schemas.spec import IndexSpec

if TYPE_CHECKING:
    from encoder import M3Encoder

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yields lists of at most ``size`` items, consuming ``items`` lazily."""
    if size <= 0:
        raise InputError(f"batch_size must be positive, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def validate_document(doc: object, position: int) -> Document:
    """Checks the document's types; returns it. ``position`` names it in errors."""
    if not isinstance(doc, Document):
        raise InputError(
            f"item {position} is a {type(doc).__name__}; upsert takes connectors.Document "
            "objects or (Document, M3Embedding) pairs"
        )
    if not isinstance(doc.id, str) or not doc.id:
        raise InputError(f"document {position} has id {doc.id!r}; ids must be non-empty strings")
    if not isinstance(doc.text, str):
        raise InputError(f"document {doc.id!r} has a {type(doc.text).__name__} text; texts must be str")
    return doc


def validate_embedding(emb: M3Embedding, spec: IndexSpec, doc_id: str) -> M3Embedding:
    """Checks that ``emb`` has every output ``spec`` stores, with the right shapes and finite
    values. Raises InputError naming the document and what to do."""
    if spec.dense:
        if emb.dense is None:
            raise InputError(f"document {doc_id!r} has no dense vector; encode with dense=True")
        if emb.dense.shape != (spec.dense_dim,):
            raise InputError(
                f"document {doc_id!r}: dense vector has shape {emb.dense.shape}, the collection "
                f"expects ({spec.dense_dim},); use the encoder the collection was built with"
            )
        if not np.all(np.isfinite(emb.dense)):
            raise InputError(f"document {doc_id!r}: dense vector contains NaN or infinity")
    if spec.sparse:
        if emb.sparse is None:
            raise InputError(f"document {doc_id!r} has no sparse weights; encode with sparse=True")
        for token, weight in emb.sparse.items():
            if not isinstance(token, (int, np.integer)) or not 0 <= int(token) < 2**32:
                raise InputError(
                    f"document {doc_id!r}: sparse key {token!r} is not a token id (int in [0, 2^32))"
                )
            if not math.isfinite(weight) or weight <= 0:
                raise InputError(
                    f"document {doc_id!r}: sparse weight {weight!r} for token {token}; weights "
                    "must be finite and > 0"
                )
    if spec.colbert:
        if emb.colbert is None:
            raise InputError(f"document {doc_id!r} has no ColBERT vectors; encode with colbert=True")
        rows = emb.colbert
        if rows.ndim != 2 or rows.shape[1] != spec.colbert_dim or rows.shape[0] == 0:
            raise InputError(
                f"document {doc_id!r}: ColBERT array has shape {rows.shape}, the collection "
                f"expects (n >= 1, {spec.colbert_dim})"
            )
        if rows.shape[0] > spec.max_colbert_rows:
            raise InputError(
                f"document {doc_id!r} has {rows.shape[0]} ColBERT rows, more than the "
                f"collection's limit of {spec.max_colbert_rows}; split long texts with "
                "M3Encoder.encode_windows (window_tokens <= limit + 1) and index the windows"
            )
        if not np.all(np.isfinite(rows)):
            raise InputError(f"document {doc_id!r}: ColBERT vectors contain NaN or infinity")
    return emb


def embed_batch(
    items: Sequence[UpsertItem],
    spec: IndexSpec,
    encoder: M3Encoder | None,
    *,
    offset: int = 0,
) -> list[tuple[Document, M3Embedding]]:
    """Pairs every document of the batch with a validated embedding, encoding the documents
    that came without one in a single encoder call. Raises before anything is written."""
    docs: list[Document] = []
    given: list[M3Embedding | None] = []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            if len(item) != 2 or not isinstance(item[1], M3Embedding):
                raise InputError(f"item {offset + i} must be (Document, M3Embedding), got {item!r:.80}")
            docs.append(validate_document(item[0], offset + i))
            given.append(item[1])
        else:
            docs.append(validate_document(item, offset + i))
            given.append(None)
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"document id {dup!r} appears twice in one batch; ids must be unique")
    missing = [i for i, e in enumerate(given) if e is None]
    if missing:
        if encoder is None:
            raise InputError(
                "documents came without embeddings and the connector has no encoder; pass "
                "encoder=M3Encoder(...) to connect() or upsert (Document, M3Embedding) pairs"
            )
        for i in missing:
            if not docs[i].text.strip():
                raise InputError(
                    f"document {docs[i].id!r} has an empty or whitespace-only text: nothing to "
                    "index; drop it or give it text"
                )
        encoded = encoder.encode(
            [docs[i].text for i in missing],
            dense=spec.dense,
            sparse=spec.sparse,
            colbert=spec.colbert,
        )
        for i, new in zip(missing, encoded):
            given[i] = new
    out: list[tuple[Document, M3Embedding]] = []
    for doc, emb in zip(docs, cast(list[M3Embedding], given)):  # every gap was filled above
        if spec.sparse and emb.sparse is not None and not emb.sparse:
            raise InputError(
                f"document {doc.id!r} has no sparse weight > 0 (all its tokens are special or "
                "unknown); databases reject an all-zero sparse vector: drop the document or "
                "store it in a collection without sparse"
            )
        out.append((doc, validate_embedding(emb, spec, doc.id)))
    return out


def encode_query(
    query: str | M3Embedding, encoder: M3Encoder | None, *, dense: bool, sparse: bool, colbert: bool
) -> M3Embedding:
    """The query's embedding: given, or encoded with only the outputs the mode needs."""
    if isinstance(query, M3Embedding):
        return query
    if not isinstance(query, str):
        raise TypeError(f"query must be a str or an M3Embedding, got {type(query).__name__}")
    if not query.strip():
        raise InputError("the query is empty; give a text to search for")
    if encoder is None:
        raise InputError("a text query needs an encoder: pass encoder=M3Encoder(...) to connect()")
    return encoder.encode([query], dense=dense, sparse=sparse, colbert=colbert)[0]


def with_retries(
    operation: Callable[[], T],
    *,
    is_transient: Callable[[Exception], bool],
    attempts: int = 5,
    base_delay: float = 0.2,
    what: str = "database call",
) -> T:
    """Runs ``operation``, retrying transient failures with exponential backoff (0.2 s, 0.4 s,
    ...). A non-transient error is raised at once; the last transient one becomes a
    retriable BackendError."""
    for attempt in range(attempts):
        try:
            return operation()
        except Exception as exc:  # the predicate decides what is transient
            if not is_transient(exc):
                raise
            if attempt == attempts - 1:
                raise BackendError(
                    f"{what} failed {attempts} times with a transient error: {exc}",
                    retriable=True,
                ) from exc
            time.sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")
