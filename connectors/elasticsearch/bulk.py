"""Per-document results of Elasticsearch bulk writes: which ids were written, which were
refused and why, as one BulkWriteError naming every refused id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from m3vdb.errors import BulkFailedError, BulkItemFailure, BulkRejectedError


def bulk_item_failures(
    results: Sequence[tuple[bool, Mapping[str, Any]]],
) -> tuple[list[str], list[BulkItemFailure]]:
    """Splits ``streaming_bulk`` results (``(ok, {op: item})`` pairs, as ES returns them) into
    the ids that succeeded and the failures. A ``delete`` of an unknown id (404 not_found) is a
    success: deleting what is not there leaves the wanted state."""
    done: list[str] = []
    failed: list[BulkItemFailure] = []
    for ok, result in results:
        ((op, item),) = result.items()
        doc_id = str(item.get("_id", ""))
        status = int(item.get("status", 500))
        if ok or (op == "delete" and status == 404):
            done.append(doc_id)
            continue
        error = item.get("error")
        if isinstance(error, Mapping):
            error_type = str(error.get("type", "error"))
            reason = str(error.get("reason", ""))
            caused = error.get("caused_by")
            if isinstance(caused, Mapping) and caused.get("reason"):
                reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
        else:
            exc = item.get("exception")
            error_type = type(exc).__name__ if exc is not None else "error"
            reason = str(error)
        failed.append(BulkItemFailure(doc_id, status, error_type, reason))
    return done, failed


def raise_for_bulk_failures(
    results: Sequence[tuple[bool, Mapping[str, Any]]], *, what: str = "upsert"
) -> list[str]:
    """The per-item error handling of every bulk write: returns the ids that succeeded, or
    raises a :class:`BulkWriteError` naming every failed id with its status and reason.

    ``results`` are ``streaming_bulk``'s ``(ok, {op: item})`` pairs (``raise_on_error=False``).
    """
    done, failed = bulk_item_failures(results)
    if not failed:
        return done
    listed = "\n  - ".join(
        f"{f.id!r}: HTTP {f.status} {f.error_type}: {f.reason}" for f in failed[:20]
    )
    more = f"\n  ... and {len(failed) - 20} more" if len(failed) > 20 else ""
    message = (
        f"Elasticsearch refused {len(failed)} of {len(done) + len(failed)} documents of the "
        f"{what} batch:\n  - {listed}{more}\n{len(done)} documents of the batch were written "
        "(each complete); fix the refused ones and run the same call again (it is idempotent)"
    )
    if all(400 <= f.status < 500 and not f.transient for f in failed):
        raise BulkRejectedError(message, failed, done)
    raise BulkFailedError(message, failed, done, retriable=all(f.transient for f in failed))
