"""What every engine and the ``Collection`` share: validating documents and embeddings
against the IndexSpec, encoding what needs encoding, streaming in batches, retrying transient
failures with backoff, closing a client when opening fails.

Nothing here imports a database client.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from m3vdb.connectors.base import UpsertItem
from m3vdb.errors import (
    BackendError,
    InputError,
)
from m3vdb.schemas.data import FLOAT32_MIN_NORMAL, Document, M3Embedding
from m3vdb.schemas.spec import IndexSpec
from m3vdb.schemas.strings import check_document_strings

if TYPE_CHECKING:
    from m3vdb.schemas.encoding import Encoder

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yields lists of at most ``size`` items, consuming ``items`` lazily."""
    if size <= 0:
        raise InputError(f"batch_size must be positive, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

METADATA_RULE = (
    "metadata is a dict with non-empty str keys (taken literally: 'a.b' is one key) whose "
    "values are str, bool, int (64-bit), finite float, or flat lists of these"
)


def validate_document(doc: object, position: int) -> Document:
    """Checks the document's types, its text and its metadata; returns it. ``position``
    names it in errors.

    Raises:
        TypeError: not a Document, an id or text that is not a str, metadata that is not a
            dict (None, a str, a list...).
        InputError: an empty id, an empty or whitespace-only text, or metadata that breaks
            :data:`METADATA_RULE`.
    """
    if not isinstance(doc, Document):
        raise TypeError(
            f"item {position} is a {type(doc).__name__}; upsert takes m3vdb.Document "
            "objects or (Document, M3Embedding) pairs"
        )
    if not isinstance(doc.id, str):
        raise TypeError(
            f"document {position} has a {type(doc.id).__name__} id ({doc.id!r}); ids are str"
        )
    if not doc.id:
        raise InputError(f"document {position} has an empty id; ids must be non-empty strings")
    if not isinstance(doc.text, str):
        raise TypeError(
            f"document {doc.id!r} has a {type(doc.text).__name__} text; texts must be str"
        )
    if not doc.text.strip():
        # Refused even with an embedding given: a stored document whose text is empty cannot
        # be re-encoded, shown or searched by BM25, and the README promises the refusal.
        raise InputError(
            f"document {doc.id!r} has an empty or whitespace-only text: nothing to index; drop "
            "it or give it text"
        )
    validate_metadata(doc.metadata, doc.id)
    check_document_strings(doc)
    return doc


def validate_metadata(metadata: object, doc_id: str) -> None:
    """Enforces :data:`METADATA_RULE`, the same for every backend, before anything is written.

    Nested objects are refused: a filter key is a literal top-level key on every backend, so
    nothing inside a nested object could be filtered, and Elasticsearch would map it as
    sub-fields. Flatten them (``{"author.name": "x"}``). Tuples are refused too: they would
    come back as lists.

    Raises:
        TypeError: ``metadata`` is not a dict.
        InputError: a key or value breaks the rule (naming the document and the key).
    """
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"document {doc_id!r}: metadata is {metadata!r:.60} ({type(metadata).__name__}); "
            f"{METADATA_RULE}. Use {{}} for no metadata"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InputError(
                f"document {doc_id!r}: metadata key {key!r} ({type(key).__name__}) is not a "
                f"non-empty str; {METADATA_RULE}"
                + (f"; write {str(key)!r}" if isinstance(key, (int, float)) else "")
            )
        if isinstance(value, list):
            for element in value:
                _check_metadata_value(element, doc_id, key, in_list=True)
        else:
            _check_metadata_value(value, doc_id, key, in_list=False)


def _check_metadata_value(value: object, doc_id: str, key: str, *, in_list: bool) -> None:
    where = f"document {doc_id!r}: metadata {key!r}" + (" holds" if in_list else " is")
    if isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InputError(
                f"{where} {value}, outside the 64-bit integer range the databases store; "
                "store it as a str or a float"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(
                f"{where} {value!r}; NaN and infinity are not JSON: use a finite number, or "
                "leave the key out"
            )
        return
    if isinstance(value, Mapping):
        hint = (
            "nested objects are not stored: flatten them into literal keys, e.g. "
            f"{{'{key}.name': ...}}"
        )
    elif isinstance(value, (list, tuple)):
        hint = "lists are flat: nested lists are not stored" if in_list else "write a list"
    elif isinstance(value, np.generic):
        hint = "convert numpy scalars with .item()"
    else:
        hint = "convert it (e.g. a set to a sorted list, a datetime to an ISO str)"
    raise InputError(f"{where} {value!r:.60} ({type(value).__name__}); {METADATA_RULE}: {hint}")


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
                    f"document {doc_id!r}: sparse key {token!r} is not a token id "
                    "(int in [0, 2^32))"
                )
            if not math.isfinite(weight) or weight <= 0:
                raise InputError(
                    f"document {doc_id!r}: sparse weight {weight!r} for token {token}; weights "
                    "must be finite and > 0"
                )
            if weight < FLOAT32_MIN_NORMAL:
                raise InputError(
                    f"document {doc_id!r}: sparse weight {weight!r} for token {token} is below "
                    f"the smallest normal float32 ({FLOAT32_MIN_NORMAL:.6g}); databases store "
                    "float32 and Elasticsearch refuses such weights. Drop these tokens (their "
                    "contribution to any score is below float32 precision)"
                )
    if spec.colbert:
        if emb.colbert is None:
            raise InputError(
                f"document {doc_id!r} has no ColBERT vectors; encode with colbert=True"
            )
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
    encoder: Encoder | None,
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
                raise TypeError(
                    f"item {offset + i} must be (Document, M3Embedding), got {item!r:.80}"
                )
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


# --------------------------------------------------------------------------- opening


@contextmanager
def closed_on_error(client: Any, owns_client: bool) -> Iterator[None]:
    """Closes a client that ``open_connector`` created when opening the connector fails, so
    that a failed open leaves no connection (or, for embedded engines, no file lock) behind."""
    try:
        yield
    except BaseException:
        if owns_client:
            client.close()
        raise
