"""The one error hierarchy of m3vdb.

Every error says what was found, what was expected and what to do. ``caller_fault`` tells
whether the caller's input or configuration caused it; ``retriable`` whether the same call
may succeed later. Native errors of the databases are translated into these types so that
embedded and server backends raise the same exceptions for the same failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class M3VDBError(Exception):
    """Base class of every m3vdb error."""

    caller_fault: bool = True
    retriable: bool = False


class MissingDependencyError(M3VDBError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install``."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed. "
            f"Run: pip install 'm3vdb[{extra}]'"
        )
        self.package = package
        self.extra = extra


class CheckpointError(M3VDBError):
    """The model checkpoint is missing a file or a file has the wrong shape."""


class InputError(M3VDBError, ValueError):
    """The caller passed a value that cannot be used (empty text, NaN, wrong dimension...)."""


class SchemaMismatchError(M3VDBError):
    """An existing collection or index does not match what the connector expects."""


class CollectionNotFoundError(M3VDBError):
    """The collection (index) does not exist: the connector was opened with ``create=False``
    (nothing was created), or the collection was dropped while the connector was open."""

    def __init__(self, collection: str, database: str, *, kind: str = "collection") -> None:
        super().__init__(
            f"no {kind} {collection!r} in {database} (never created, or dropped): index "
            f"documents into it first, or check the {kind} name (and the database target)"
        )
        self.collection = collection
        self.database = database


class UnsupportedCapabilityError(M3VDBError):
    """The database (its version, licence or embedded form) cannot do what was asked."""


class BackendError(M3VDBError):
    """The database failed. ``retriable`` is True for transient failures (timeouts,
    unavailable, rate limits) that a retry with backoff may fix."""

    caller_fault = False

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True)
class BulkItemFailure:
    """One document a database refused in a bulk write (Elasticsearch's per-item errors)."""

    id: str
    status: int
    error_type: str
    reason: str

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


class BulkWriteError(BackendError):
    """The database refused documents of a bulk write.

    Attributes:
        failures: every refused document: id, status, error type and reason.
        written_ids: the ids of the same batch that were written (complete documents).
    """

    def __init__(
        self,
        message: str,
        failures: Sequence[BulkItemFailure],
        written_ids: Sequence[str],
        *,
        retriable: bool = False,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.failures = list(failures)
        self.written_ids = list(written_ids)


class BulkRejectedError(BulkWriteError, InputError):
    """Every failure was the documents' fault (e.g. a metadata value of the wrong type)."""

    caller_fault = True


class BulkFailedError(BulkWriteError):
    """Some failure was the database's (rejections, shard failures); ``retriable`` when all
    failures were transient."""
