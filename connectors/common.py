"""What every connector shares: validating embeddings against the IndexSpec, encoding what
needs encoding, streaming in batches, retrying transient failures with backoff, and
:class:`BaseConnector`, the base class of the three connectors.

Database modules call these; nothing here imports a database client.
"""

from __future__ import annotations

import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import numpy as np

from m3vdb.connectors.base import FilterLike, HybridOptions, SearchMode, UpsertItem
from m3vdb.connectors.plan import SearchPlan, build_plan
from m3vdb.schemas.data import FLOAT32_MIN_NORMAL, Document, Hit, M3Embedding
from m3vdb.schemas.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
    SchemaMismatchError,
)
from m3vdb.schemas.spec import IndexSpec
from m3vdb.schemas.strings import check_document_strings, check_id

if TYPE_CHECKING:
    from m3vdb.schemas.encoding import Encoder

T = TypeVar("T")
ClientT = TypeVar("ClientT")
SelfT = TypeVar("SelfT", bound="BaseConnector[Any]")


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


def resolve_spec(collection: object, encoder: Encoder | None, spec: IndexSpec | None) -> IndexSpec:
    """The front matter of every ``open_connector``: checks the collection name and the
    encoder's dimensions, and returns ``spec`` (default: the encoder's dimensions, or BGE-M3's).

    Raises:
        InputError: the collection name is not a non-empty string.
        SchemaMismatchError: the encoder's dimensions differ from the spec's.
    """
    if not isinstance(collection, str) or not collection:
        raise InputError(f"collection must be a non-empty string, got {collection!r}")
    if spec is None:
        spec = IndexSpec.for_encoder(encoder) if encoder is not None else IndexSpec()
    if encoder is not None:
        dims = (int(encoder.dense_dim), int(encoder.colbert_dim))
        if dims != (spec.dense_dim, spec.colbert_dim):
            raise SchemaMismatchError(
                f"the encoder produces dense/ColBERT dimensions {dims}, the IndexSpec says "
                f"{(spec.dense_dim, spec.colbert_dim)}; build the spec with "
                "IndexSpec.for_encoder(encoder)"
            )
    return spec


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


# --------------------------------------------------------------------------- the base class


class BaseConnector(ABC, Generic[ClientT]):
    """What the three connectors share: their state, the context manager, retried and
    translated client calls, the streaming ``upsert`` loop and the validation of ids and
    query vectors. Implements ``connectors.base.Connector`` together with a subclass.

    A subclass sets ``_database`` (its name in messages) and ``_max_k`` (its result limit)
    and implements:

    - ``_write_batch(pairs)``: writes one batch of validated ``(Document, M3Embedding)``
      pairs, idempotent by id, through :meth:`_call`; database-specific checks of a document
      run here, before anything of the batch is written.
    - ``_is_transient(exc)``: whether a retry may fix a native client error.
    - ``_translate_error(exc, what)``: a native client error as an m3vdb error (the same type
      for embedded and server backends).
    - ``_run(plan)``: compiles the validated :class:`~m3vdb.connectors.plan.SearchPlan`'s
      filter into the native form and runs it; ``search`` itself (validation, encoding the
      query) is this class's, so backends cannot drift apart in what they accept.
    - the rest of ``connectors.base.Connector``: ``get``, ``delete``, ``count`` and ``drop``,
      using :meth:`_check_ids` (a subclass missing one fails the protocol conformance test
      each connector has).

    The subclass's constructor calls ``super().__init__`` and then opens (or creates) the
    collection; ``close`` closes the client only when the connector created it.
    """

    _database: ClassVar[str] = "the database"
    #: The most results (and candidates per signal) one request may ask for; None: no limit.
    _max_k: ClassVar[int | None] = None
    #: What the database calls a collection, in messages ("index" for Elasticsearch).
    _kind: ClassVar[str] = "collection"

    def __init__(
        self,
        client: ClientT,
        *,
        collection: str,
        spec: IndexSpec,
        encoder: Encoder | None = None,
        owns_client: bool = False,
        attempts: int = 5,
    ) -> None:
        """Args:
        client: the native client every call goes through.
        collection: the collection (index) name.
        spec: what the collection stores.
        encoder: encodes texts on upsert and search (None: embeddings only).
        owns_client: the connector created the client (from a URL): ``close`` closes it.
        attempts: tries per client call, transient failures retried with backoff.
        """
        self._client = client
        self._collection = collection
        self._spec = spec
        self._encoder = encoder
        self._owns_client = owns_client
        self._attempts = attempts

    # -- properties and lifetime --------------------------------------------------------

    @property
    def collection(self) -> str:
        """The collection (index) name."""
        return self._collection

    @property
    def spec(self) -> IndexSpec:
        """What the collection stores."""
        return self._spec

    @property
    def client(self) -> ClientT:
        """The underlying native client, for what the connector does not wrap."""
        return self._client

    def close(self) -> None:
        """Closes the client if this connector created it (a client passed in stays open)."""
        if self._owns_client:
            self._client.close()  # type: ignore[attr-defined]

    def __enter__(self: SelfT) -> SelfT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- client calls -------------------------------------------------------------------

    @abstractmethod
    def _is_transient(self, exc: Exception) -> bool:
        """Whether a retry may fix ``exc`` (a native client error)."""

    @abstractmethod
    def _translate_error(self, exc: Exception, what: str) -> M3VDBError:
        """``exc`` (a native client error of the call ``what``) as an m3vdb error."""

    def _is_missing_collection(self, exc: Exception) -> bool:
        """Whether ``exc`` says the collection does not exist (dropped while open); such calls
        raise CollectionNotFoundError on every backend."""
        return False

    def _where(self) -> str:
        """The database, as CollectionNotFoundError names it."""
        return self._database

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        """Runs one client call, retrying transient errors with backoff; any other native
        error is translated, so callers see m3vdb errors only."""
        try:
            return with_retries(
                operation,
                is_transient=self._is_transient,
                attempts=self._attempts,
                what=f"{self._database} {what}",
            )
        except M3VDBError:
            raise
        except Exception as exc:
            if self._is_missing_collection(exc):
                raise CollectionNotFoundError(
                    self._collection, self._where(), kind=self._kind
                ) from exc
            raise self._translate_error(exc, what) from exc

    # -- writes -------------------------------------------------------------------------

    def upsert(
        self,
        items: Iterable[UpsertItem],
        *,
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> int:
        """Encodes (unless embeddings are given) and writes documents, idempotent by id.

        Streams ``items`` in batches of ``batch_size``; each batch is validated completely
        (types, shapes, NaN, sparse weights, then the database's own limits) before any of it
        is written, and written by the subclass's ``_write_batch``. Transient errors are
        retried with backoff; a failing batch stops the stream (earlier batches stay written).

        Returns:
            The number of documents written.
        """
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc=f"upsert {self._collection}", unit="doc")
        written = 0
        try:
            for batch in batched(items, batch_size):
                pairs = embed_batch(batch, self._spec, self._encoder, offset=written)
                self._write_batch(pairs)
                written += len(pairs)
                if bar is not None:
                    bar.update(len(pairs))
        finally:
            if bar is not None:
                bar.close()
        return written

    @abstractmethod
    def _write_batch(self, pairs: Sequence[tuple[Document, M3Embedding]]) -> None:
        """Writes one validated batch (see the class docstring)."""

    # -- search -----------------------------------------------------------------------

    def search(
        self,
        query: str | M3Embedding,
        k: int = 10,
        *,
        mode: SearchMode = "hybrid",
        filter: FilterLike = None,
        hybrid: HybridOptions | None = None,
    ) -> list[Hit]:
        """Top-``k`` documents for ``query``, in one database request where the database
        allows; ``filter`` applies to every stage. See ``m3vdb.connectors.base`` for the score
        scales and ``m3vdb.connectors.plan`` for what is accepted (the same on every backend).

        Raises:
            InputError: a bad ``k``, mode, option, filter or query vector, or a mode the
                collection cannot answer.
            TypeError: a query or option of the wrong type.
            BackendError: the database failed.
        """
        return self._execute(self._plan(query, k, mode=mode, filter=filter, hybrid=hybrid))

    def _plan(
        self,
        query: str | M3Embedding,
        k: int,
        *,
        mode: str,
        filter: FilterLike,
        hybrid: HybridOptions | None,
    ) -> SearchPlan:
        return build_plan(
            query,
            k,
            mode=mode,
            filter=filter,
            hybrid=hybrid,
            spec=self._spec,
            encoder=self._encoder,
            collection=self._collection,
            max_k=self._max_k,
        )

    def _execute(self, plan: SearchPlan) -> list[Hit]:
        if plan.matches_nothing:
            return []  # no token of the query has a weight: nothing can match
        return self._run(plan)

    @abstractmethod
    def _run(self, plan: SearchPlan) -> list[Hit]:
        """Compiles the plan's filter and runs the plan in the database (see the class
        docstring)."""

    # -- validation -------------------------------------------------------------------

    def _schema_mismatch(self, problems: Sequence[str], remedy: str) -> SchemaMismatchError:
        """The error for an existing collection that differs from the spec: every problem,
        then what to do."""
        return SchemaMismatchError(
            f"{self._database} {self._kind} {self._collection!r} does not match the "
            "IndexSpec:\n  - " + "\n  - ".join(problems) + "\n" + remedy
        )

    @staticmethod
    def _check_ids(ids: Sequence[str]) -> list[str]:
        """``ids`` as a list; InputError for a single string or an id that is not a
        non-empty string of valid Unicode (no stored document has one)."""
        if isinstance(ids, str):
            raise InputError("pass a list of ids, not a single string")
        return [check_id(i) for i in ids]
