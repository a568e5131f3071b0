"""``Engine``: the few primitives a database must provide, and nothing else.

Everything above them (batching, validation, encoding, the search plan, progress, the context
manager) is written once in :class:`m3vdb.connectors.collection.Collection`. A database is one
``Engine`` subclass plus one ``Database`` row in :mod:`m3vdb.connectors.registry`; a subclass
that misses a primitive cannot be instantiated (``abc``), so it fails when it is first
opened, in its own tests, never half-way through a user's call.

What a subclass implements (each an ``@abstractmethod`` below):

Database level (class methods: they open no collection, so they work on a collection built
with any model or layout):

- :meth:`Engine.open`: create the collection, or open an existing one and validate it against
  the spec (the given one, else the one the collection recorded, else the default) and return
  the engine bound to it. A new collection records its spec (model, dimensions, options) in
  the database's native place for collection metadata.
- :meth:`Engine.drop_collection`: drop a collection by name (and what m3vdb created with it).
- :meth:`Engine.list_collections`: every collection, with its entry count and recorded spec.

Collection level (on the opened engine):

- :meth:`Engine.write`: upsert one batch of validated ``(Document, M3Embedding)`` pairs.
- :meth:`Engine.delete_ids` and :meth:`Engine.delete_where`: delete by ids, by filter.
- :meth:`Engine.get` and :meth:`Engine.scan`: read documents by ids, by filter.
- :meth:`Engine.scan_embeddings`: read stored entries WITH their stored embeddings, by
  filter, in batches (export and copy between databases).
- :meth:`Engine.count`: the number of stored documents.
- :meth:`Engine.run`: one native query for a validated search plan (every mode).
- :meth:`Engine.drop`: drop the opened collection.

The error table (how the client's exceptions map to ours):

- :meth:`Engine.is_transient`: whether a retry may fix a native error.
- :meth:`Engine.translate_error`: a native error as an m3vdb error (the same type for an
  embedded engine and a server).

Concrete helpers every subclass uses: :meth:`Engine.call` (one client call, retried with
backoff when transient, translated otherwise), :meth:`Engine.schema_mismatch`,
:func:`settle_spec` and :func:`record_json` / :func:`spec_from_record_json`.
"""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from m3vdb.connectors.common import with_retries
from m3vdb.connectors.plan import SearchPlan
from m3vdb.errors import BackendError, CollectionNotFoundError, M3VDBError, SchemaMismatchError
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.spec import IndexSpec

#: The environment variable that sets :data:`EMBEDDED_CALL_TIMEOUT` (seconds).
TIMEOUT_VARIABLE = "M3VDB_EMBEDDED_CALL_TIMEOUT"
#: How long one call to an embedded engine may take: generous (a healthy call here takes
#: milliseconds to seconds; a write of a large batch on a slow disk, tens of seconds), so it
#: fires only on an engine that stopped answering.
EMBEDDED_CALL_TIMEOUT = float(os.environ.get(TIMEOUT_VARIABLE, "600"))

T = TypeVar("T")
EngineT = TypeVar("EngineT", bound="Engine")

#: Version of the record a collection keeps about itself (see :func:`record_json`).
RECORD_FORMAT = 1


@dataclass(frozen=True)
class CollectionInfo:
    """One collection of a database, as ``m3vdb.list_collections`` reports it.

    Attributes:
        name: the collection (index) name.
        entries: the entries stored (documents; for Milvus's companion layout, documents, not
            token rows).
        spec: what the collection was built with (model, dimensions, outputs, options), as it
            recorded it; None for a collection not made by m3vdb, or made before m3vdb
            recorded its spec.
    """

    name: str
    entries: int
    spec: IndexSpec | None


def settle_spec(
    given: IndexSpec | None, recorded: IndexSpec | None, default: IndexSpec
) -> IndexSpec:
    """The spec to open a collection with: the caller's, else the one the collection recorded
    (so a collection opens as it is, whatever model built it), else ``default``.

    A collection keeps its ColBERT storage: a caller's spec naming the default precision
    (float32) or pool factor (1) takes the recorded ones; another pool factor than the
    recorded one is a SchemaMismatchError (another precision is one too, from the engine's
    check of the native field).

    A collection built with a MUVERA first stage keeps it: a caller's spec without
    ``colbert_fde`` takes the recorded one (every later write must store the FDE, or the
    document would never be a candidate; a command line that builds the spec from the model
    alone opens it as built).

    Raises:
        SchemaMismatchError: the caller's spec and the record name different MUVERA settings
            (``colbert_fde``): queries would be encoded with other random matrices than the
            stored documents, which no field type shows.
    """
    if given is not None:
        if recorded is None:
            return given
        given = _adopt_storage(given, recorded)
        if given.colbert_fde == recorded.colbert_fde:
            return given
        if given.colbert_fde is None and recorded.colbert_fde is not None:
            return replace(given, colbert_fde=recorded.colbert_fde)
        raise SchemaMismatchError(
            f"the collection was built with colbert_fde={recorded.colbert_fde}, the IndexSpec "
            f"given says {given.colbert_fde}; open it without a spec (it opens as recorded) "
            "or with the recorded colbert_fde"
        )
    if recorded is not None:
        return recorded
    return default


def _adopt_storage(given: IndexSpec, recorded: IndexSpec) -> IndexSpec:
    """``given`` with the recorded ColBERT storage settings where it names the defaults
    (``colbert_precision="float32"``, ``colbert_pool_factor=1``), as ``colbert_fde=None``
    adopts the recorded FDE: a spec built from the model alone (the CLI's) opens a
    collection as it was built. A precision other than the default that differs is left for
    the engine's validation of the native schema (a SchemaMismatchError naming the field);
    a different pool factor, which no field type shows, is refused here."""
    if given.colbert_precision == "float32" and recorded.colbert_precision != "float32":
        given = replace(given, colbert_precision=recorded.colbert_precision)
    if given.colbert_pool_factor != recorded.colbert_pool_factor:
        if given.colbert_pool_factor != 1:
            raise SchemaMismatchError(
                f"the collection was built with colbert_pool_factor="
                f"{recorded.colbert_pool_factor}, the IndexSpec given says "
                f"{given.colbert_pool_factor}; open it without a spec (it opens as recorded) "
                "or with the recorded pool factor"
            )
        given = replace(given, colbert_pool_factor=recorded.colbert_pool_factor)
    return given


def record_json(spec: IndexSpec) -> dict[str, Any]:
    """What a collection records about itself: the record format and its spec."""
    return {"format": RECORD_FORMAT, "spec": spec.to_record()}


def spec_from_record_json(record: Any) -> IndexSpec | None:
    """The spec of a record written by :func:`record_json`; None for anything else (no record,
    or one this m3vdb cannot read: the collection then opens as one without a record)."""
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            return None
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
        return None
    try:
        return IndexSpec.from_record(record["spec"])
    except ValueError:
        return None


class Engine(ABC):
    """One collection of one database, reached through that database's native client.

    See the module docstring for what a subclass implements. Class attributes a subclass sets:
    ``database`` (its name in messages), ``kind`` (what it calls a collection), ``max_k`` (the
    most results one request may ask for; None: no limit).

    Build one with the subclass's :meth:`open`; ``close`` releases the client when the engine
    created it (from a URL), a client passed in stays open.
    """

    database: ClassVar[str] = "the database"
    kind: ClassVar[str] = "collection"
    max_k: ClassVar[int | None] = None
    #: The ``Collection`` subclass ``connect`` returns for this engine (None: ``Collection``);
    #: set by a database whose search takes more (Elasticsearch's ``bm25``).
    collection_type: ClassVar[type | None] = None
    #: Seconds one native call may take before it is a BackendError: set for embedded engines
    #: (an engine in this process, or Milvus Lite's local server, that stops answering would
    #: hang the caller); None for servers, whose clients have their own timeouts.
    call_timeout: float | None = None
    _stuck: str | None = None  # the call that never returned (the engine refuses more)

    def __init__(
        self,
        client: Any,
        *,
        collection: str,
        spec: IndexSpec,
        owns_client: bool = False,
        attempts: int = 5,
    ) -> None:
        """Args:
        client: the native client every call goes through.
        collection: the collection (index) name.
        spec: what the collection stores.
        owns_client: the engine created the client (from a URL): ``close`` closes it.
        attempts: tries per client call, transient failures retried with backoff.
        """
        self._client = client
        self._collection = collection
        self._spec = spec
        self._owns_client = owns_client
        self._attempts = attempts

    # -- state --------------------------------------------------------------------------

    @property
    def collection(self) -> str:
        """The collection (index) name."""
        return self._collection

    @property
    def spec(self) -> IndexSpec:
        """What the collection stores."""
        return self._spec

    @property
    def client(self) -> Any:
        """The native client, for what m3vdb does not wrap."""
        return self._client

    def close(self) -> None:
        """Closes the client if this engine created it (a client passed in stays open)."""
        if self._owns_client:
            self._client.close()

    # -- database level -----------------------------------------------------------------

    @classmethod
    @abstractmethod
    def open(
        cls: type[EngineT],
        target: Any,
        *,
        collection: str,
        spec: IndexSpec | None,
        default_spec: IndexSpec,
        options: Any,
        create: bool,
    ) -> EngineT:
        """Opens ``collection`` in the database ``target`` names: creates it with
        ``spec or default_spec`` (recording that spec) when missing and ``create``, else
        validates it against :func:`settle_spec` (``spec``, else its record, else
        ``default_spec``).

        Raises:
            CollectionNotFoundError: missing and not ``create`` (and nothing was created).
            SchemaMismatchError: the collection differs from the spec (every difference).
        """

    @classmethod
    @abstractmethod
    def drop_collection(cls, target: Any, collection: str, *, options: Any = None) -> bool:
        """Drops ``collection`` without opening it (whatever its schema); False when there was
        none. Creates nothing (no Lite file, no local folder)."""

    @classmethod
    @abstractmethod
    def list_collections(cls, target: Any, *, options: Any = None) -> list[CollectionInfo]:
        """Every collection of the database (m3vdb's helpers, such as Milvus's companion
        collections, left out), sorted by name. Creates nothing."""

    # -- collection level ---------------------------------------------------------------

    @abstractmethod
    def write(
        self, pairs: Sequence[tuple[Document, M3Embedding]], *, fde: np.ndarray | None = None
    ) -> None:
        """Upserts one batch of validated pairs, idempotent by id; the database's own limits
        are checked for every document before anything of the batch is written.

        ``fde``: the documents' MUVERA encodings, ``(len(pairs), spec.colbert_fde.dim)``, row i
        for pair i (``Collection`` computes them when ``spec.colbert_fde`` is set; None
        otherwise), stored in the dense field ``spec.fields.colbert_fde`` with the document."""

    @abstractmethod
    def delete_ids(self, ids: Sequence[str]) -> None:
        """Deletes these (checked, non-empty str) ids and what is stored for them; unknown ids
        are ignored."""

    @abstractmethod
    def delete_where(self, flt: Filter) -> None:
        """Deletes every document matching the parsed filter ``flt``."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these (checked) ids, in the order given; missing ids are
        left out."""

    @abstractmethod
    def scan(self, flt: Filter | None, *, batch_size: int) -> Iterator[Document]:
        """Every stored document matching the parsed filter (all without one), read in pages of
        ``batch_size`` (checked positive); order unspecified."""

    @abstractmethod
    def scan_embeddings(
        self, flt: Filter | None, *, batch_size: int
    ) -> Iterator[list[tuple[Document, M3Embedding]]]:
        """Every stored entry matching ``flt`` with the embedding stored for it (outputs the
        collection does not store are None), in batches of at most ``batch_size`` (checked
        positive); order unspecified. A database that cannot give its stored vectors back
        raises UnsupportedCapabilityError naming what works instead."""

    @abstractmethod
    def count(self) -> int:
        """The number of stored documents (exact)."""

    @abstractmethod
    def run(self, plan: SearchPlan) -> list[Hit]:
        """Runs a validated plan (``plan.mode`` is dense, sparse, colbert or hybrid) as the
        database's native query, compiling ``plan.filter`` so that it applies to every
        stage; see ``m3vdb.connectors.base`` for each mode's score scale."""

    @abstractmethod
    def drop(self) -> None:
        """Drops the opened collection and what m3vdb created with it."""

    # -- the error table ------------------------------------------------------------------

    @abstractmethod
    def is_transient(self, exc: Exception) -> bool:
        """Whether a retry may fix ``exc`` (a native client error)."""

    @abstractmethod
    def translate_error(self, exc: Exception, what: str) -> M3VDBError:
        """``exc`` (a native client error of the call ``what``) as an m3vdb error."""

    def is_missing_collection(self, exc: Exception) -> bool:
        """Whether ``exc`` says the collection does not exist (dropped while open); such calls
        raise CollectionNotFoundError on every backend."""
        return False

    def where(self) -> str:
        """The database, as CollectionNotFoundError names it."""
        return self.database

    # -- helpers --------------------------------------------------------------------------

    def call(self, what: str, operation: Callable[[], T]) -> T:
        """Runs one client call, retrying transient errors with backoff; any other native
        error is translated, so callers see m3vdb errors only. With :attr:`call_timeout`, a
        call that does not return in time is a BackendError (see :meth:`_bounded`)."""
        if self.call_timeout is None:
            return self._call_now(what, operation)
        return self._bounded(what, operation)

    def _bounded(self, what: str, operation: Callable[[], T]) -> T:
        """:meth:`_call_now` in a worker thread the caller waits for at most
        :attr:`call_timeout` seconds. A call stuck in native code cannot be stopped: it is
        abandoned (a daemon thread, which does not keep the process alive), and this engine
        refuses every later call, so nothing races the stuck one."""
        if self._stuck is not None:
            raise BackendError(
                f"an earlier {self.database} {self._stuck} call never returned, so this "
                f"{self.kind} refuses further calls in this process: close it and open it again "
                "(or restart the process)",
                retriable=False,
            )
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = self._call_now(what, operation)
            except BaseException as exc:  # handed to the caller's thread below
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"m3vdb {self.database} {what}", daemon=True)
        worker.start()
        worker.join(self.call_timeout)
        if worker.is_alive():
            self._stuck = what
            raise BackendError(
                f"{self.database} {what} did not answer within {self.call_timeout:g} s (an "
                "embedded engine that stops answering: check the machine's free disk and "
                f"memory); the call was abandoned. Raise the bound with {TIMEOUT_VARIABLE}",
                retriable=False,
            )
        if "error" in outcome:
            raise outcome["error"]
        value: T = outcome["value"]
        return value

    def _call_now(self, what: str, operation: Callable[[], T]) -> T:
        try:
            return with_retries(
                operation,
                is_transient=self.is_transient,
                attempts=self._attempts,
                what=f"{self.database} {what}",
            )
        except M3VDBError:
            raise
        except Exception as exc:
            if self.is_missing_collection(exc):
                raise CollectionNotFoundError(
                    self._collection, self.where(), kind=self.kind
                ) from exc
            raise self.translate_error(exc, what) from exc

    def schema_mismatch(self, problems: Sequence[str], remedy: str = "") -> SchemaMismatchError:
        """The error for an existing collection that differs from the spec: every problem,
        then what to do."""
        remedy = remedy or (
            "Open it without a spec (it opens as it was built), with an IndexSpec that matches "
            "it (dimensions, metric, field names, precision), or use another collection name, "
            "or drop it to rebuild it."
        )
        return SchemaMismatchError(
            f"{self.database} {self.kind} {self._collection!r} does not match the "
            "IndexSpec:\n  - " + "\n  - ".join(problems) + "\n" + remedy
        )
