"""Opening and dropping the collection for the commands, with errors in the command line's
words: a missing collection or database names the ``m3vdb index`` that creates it, a
mismatched collection names the ``m3vdb drop`` / ``m3vdb index --recreate`` that fixes it,
and a Qdrant local folder held by another process says so.

No encoder is needed here: the collection is opened with the model's IndexSpec (read from
its ``config.json``), and the commands hand the connector precomputed embeddings. So
``info`` and ``drop`` never load the model, and ``index`` finds a wrong ``--db`` before it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from m3vdb.connectors.base import Connector
from m3vdb.schemas.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    SchemaMismatchError,
)
from m3vdb.schemas.spec import IndexSpec


def fix_commands(db: str, collection: str) -> str:
    """The commands that rebuild or remove a collection, for messages."""
    where = _where(db, collection)
    return (
        f"re-create it from your files with `m3vdb index PATH... --recreate{where}`, or delete "
        f"it with `m3vdb drop{where}`, or pass another --collection"
    )


def _where(db: str, collection: str) -> str:
    from m3vdb.cli.main import DEFAULT_COLLECTION, DEFAULT_DB

    out = "" if db == DEFAULT_DB else f" --db {db}"
    return out + ("" if collection == DEFAULT_COLLECTION else f" --collection {collection}")


@contextmanager
def opened(db: str, collection: str, spec: IndexSpec, *, must_exist: bool) -> Iterator[Connector]:
    """The collection, closed on exit. ``must_exist``: a collection that does not exist or
    holds nothing is the caller's mistake (a typo in --db or --collection); it is then opened
    with ``create=False``, so a typo creates nothing.

    Raises:
        InputError: no such database or collection, an empty one, or one that does not match
            the model (the message names the command that fixes it).
        BackendError: the database failed or cannot be reached.
    """
    connector = _open(db, collection, spec, must_exist=must_exist)
    try:
        if must_exist and connector.count() == 0:
            raise InputError(
                f"collection {collection!r} at {db} holds no documents: index into it first "
                f"(m3vdb index PATH...{_where(db, collection)}) or check --collection / --db"
            )
        yield connector
    finally:
        connector.close()


def _open(db: str, collection: str, spec: IndexSpec, *, must_exist: bool) -> Connector:
    from m3vdb.connectors import connect
    from m3vdb.connectors.registry import lite_path

    lite = lite_path(db)
    if must_exist and lite is not None and not Path(lite).exists():
        # checked before connecting: opening a Lite file creates it
        raise InputError(
            f"no database at {db}: index documents first (m3vdb index PATH... --db {db}) or "
            "pass the --db you indexed into"
        )
    try:
        with _children_ignore_ctrl_c():
            return connect(db, collection=collection, spec=spec, create=not must_exist)
    except CollectionNotFoundError as exc:
        raise InputError(
            f"no collection {collection!r} at {db}: index into it first "
            f"(m3vdb index PATH...{_where(db, collection)}) or check --collection / --db"
        ) from exc
    except SchemaMismatchError as exc:
        raise mismatch(exc, db, collection) from exc
    except BackendError as exc:
        if lite is not None and "Open local milvus failed" in str(exc):
            raise BackendError(
                f"the Milvus Lite file {lite} is in use by another process (Milvus Lite allows "
                "one process per file): wait for it or close it (another m3vdb command, a "
                "Python session), or run a Milvus server and use --db milvus://...",
                retriable=True,
            ) from exc
        raise BackendError(
            f"{exc}; check --db {db} and that the database is running and reachable",
            retriable=exc.retriable,
        ) from exc
    except RuntimeError as exc:
        if "already accessed by another instance" in str(exc):
            raise BackendError(
                f"the Qdrant local folder of {db} is in use by another process (Qdrant local "
                "mode allows one process per folder): wait for it or close it (another m3vdb "
                "command, a Python session), or run a Qdrant server and use --db qdrant://...",
                retriable=True,
            ) from exc
        raise


def mismatch(exc: SchemaMismatchError, db: str, collection: str) -> InputError:
    """The mismatch in the command line's words: what differs, then the commands that fix it
    (the connector's last line suggests Python calls)."""
    lines = str(exc).splitlines()
    found = " ".join(lines[:-1] if len(lines) > 1 else lines).rstrip(". ")
    return InputError(
        f"{found}. It was built with another model or settings than --model gives: "
        f"{fix_commands(db, collection)}"
    )


@contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Ctrl-C in a terminal signals the whole process group: an embedded engine started now
    as a child process (Milvus Lite's server) would die with it, mid-write, while this
    process finishes its batch. A child inherits an ignored SIGINT, so ignore it while
    connecting; this process's own handler comes back right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def drop(db: str, collection: str, spec: IndexSpec) -> bool:
    """Deletes the collection (and what the connector created with it); False when there was
    none. A collection that does not match ``spec`` is dropped through the database's own
    client, since a connector opens only a collection it can use."""
    from m3vdb.connectors.registry import lite_path

    lite = lite_path(db)
    if lite is not None and not Path(lite).exists():
        return False
    try:
        connector = _open(db, collection, spec, must_exist=True)
    except InputError as exc:
        if isinstance(exc.__cause__, CollectionNotFoundError):
            return False
        if not isinstance(exc.__cause__, SchemaMismatchError):
            raise
        _native_drop(db, collection)
        return True
    try:
        connector.drop()
    finally:
        connector.close()
    return True


def _native_drop(db: str, collection: str) -> None:
    """Drops a collection the connector refused to open (another model's dimensions)."""
    from m3vdb.connectors import drop

    drop(db, collection=collection)
