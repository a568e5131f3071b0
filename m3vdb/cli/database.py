"""Opening and dropping the collection for the commands, with errors in the command line's
words: a missing collection or database names the ``m3vdb index`` that creates it, a
mismatched collection names the ``m3vdb drop`` / ``m3vdb index --recreate`` that fixes it,
and a database failure names the --db to check.

No encoder is needed here: the collection is opened with the model's IndexSpec (read from
its ``config.json``), and the commands hand the connector precomputed embeddings. So
``info`` and ``drop`` never load the model, and ``index`` finds a wrong ``--db`` before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from m3vdb.cli.defaults import DEFAULT_COLLECTION, DEFAULT_DB
from m3vdb.connectors.base import Connector
from m3vdb.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    SchemaMismatchError,
)
from m3vdb.indexing.interrupts import children_ignore_ctrl_c
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from m3vdb.connectors import CollectionInfo


def fix_commands(db: str, collection: str) -> str:
    """The commands that rebuild or remove a collection, for messages."""
    where = _where(db, collection)
    return (
        f"re-create it from your files with `m3vdb index PATH... --recreate{where}`, or delete "
        f"it with `m3vdb drop{where}`, or pass another --collection"
    )


def _where(db: str, collection: str) -> str:
    out = "" if db == DEFAULT_DB else f" --db {db}"
    return out + ("" if collection == DEFAULT_COLLECTION else f" --collection {collection}")


@contextmanager
def opened_as_built(db: str, collection: str, model: str) -> Iterator[Connector]:
    """An existing collection opened as its recorded spec says (no model needed); one built
    before m3vdb recorded specs is opened with ``model``'s dimensions (its config.json).

    Raises:
        InputError: as :func:`opened` with ``must_exist``.
    """
    try:
        connector = _open(db, collection, None, must_exist=True)
    except InputError as exc:
        if not isinstance(exc.__cause__, SchemaMismatchError):
            raise
        from m3vdb.cli.model import spec_for_model

        connector = _open(db, collection, spec_for_model(model), must_exist=True)
    with _non_empty(connector, db, collection, must_exist=True):
        yield connector


def collections(db: str) -> list[CollectionInfo]:
    """The collections at ``db`` (``m3vdb.list_collections``), with errors in the command
    line's words; a Milvus Lite file that does not exist holds none (nothing is created)."""
    from m3vdb.connectors import list_collections
    from m3vdb.connectors.registry import lite_path

    lite = lite_path(db)
    if lite is not None and not Path(lite).exists():
        return []
    try:
        with children_ignore_ctrl_c():
            return list_collections(db)
    except BackendError as exc:
        raise _in_cli_words(exc, db) from exc


@contextmanager
def opened(
    db: str, collection: str, spec: IndexSpec | None, *, must_exist: bool
) -> Iterator[Connector]:
    """The collection, closed on exit. ``must_exist``: a collection that does not exist or
    holds nothing is the caller's mistake (a typo in --db or --collection); it is then opened
    with ``create=False``, so a typo creates nothing.

    Raises:
        InputError: no such database or collection, an empty one, or one that does not match
            the model (the message names the command that fixes it).
        BackendError: the database failed or cannot be reached.
    """
    connector = _open(db, collection, spec, must_exist=must_exist)
    with _non_empty(connector, db, collection, must_exist=must_exist):
        yield connector


@contextmanager
def opened_for_index(
    db: str,
    collection: str,
    spec: IndexSpec,
    *,
    prepare: Callable[[], IndexSpec],
    written: Callable[[], bool],
    recreate: bool,
) -> Iterator[Connector]:
    """The collection ``m3vdb index`` writes to (``m3vdb.indexing.target.opened_for_index``:
    created only after ``prepare`` loaded the model, dropped again with what it created when
    the run fails before its first write), with errors in the command line's words.

    Raises:
        InputError: the collection does not match the model (naming the fix).
        BackendError: the database failed or cannot be reached.
    """
    from m3vdb.indexing.target import opened_for_index as open_for_index

    try:
        with open_for_index(
            db, collection, spec=spec, prepare=prepare, written=written, recreate=recreate
        ) as connector:
            yield connector
    except SchemaMismatchError as exc:
        raise mismatch(exc, db, collection) from exc
    except BackendError as exc:
        raise _in_cli_words(exc, db) from exc


@contextmanager
def _non_empty(
    connector: Connector, db: str, collection: str, *, must_exist: bool
) -> Iterator[None]:
    """Closes ``connector`` on exit; with ``must_exist``, an empty collection is an error."""
    try:
        if must_exist and connector.count() == 0:
            raise InputError(
                f"collection {collection!r} at {db} holds no documents: index into it first "
                f"(m3vdb index PATH...{_where(db, collection)}) or check --collection / --db"
            )
        yield
    finally:
        connector.close()


def _open(db: str, collection: str, spec: IndexSpec | None, *, must_exist: bool) -> Connector:
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
        with children_ignore_ctrl_c():
            return connect(db, collection=collection, spec=spec, create=not must_exist)
    except CollectionNotFoundError as exc:
        raise InputError(
            f"no collection {collection!r} at {db}: index into it first "
            f"(m3vdb index PATH...{_where(db, collection)}) or check --collection / --db"
        ) from exc
    except SchemaMismatchError as exc:
        raise mismatch(exc, db, collection) from exc
    except BackendError as exc:
        raise _in_cli_words(exc, db) from exc


def mismatch(exc: SchemaMismatchError, db: str, collection: str) -> InputError:
    """The mismatch in the command line's words: what differs, then the commands that fix it
    (the connector's last line suggests Python calls)."""
    lines = str(exc).splitlines()
    found = " ".join(lines[:-1] if len(lines) > 1 else lines).rstrip(". ")
    return InputError(
        f"{found}. It was built with another model or settings than --model gives: "
        f"{fix_commands(db, collection)}"
    )


def drop(db: str, collection: str) -> bool:
    """Deletes the collection (and what m3vdb created with it); False when there was none.
    Through ``m3vdb.connectors.drop``, which opens no connector: a collection built for
    another model goes too, and the model is not needed."""
    from m3vdb.connectors import drop as drop_collection

    try:
        with children_ignore_ctrl_c():
            return drop_collection(db, collection=collection)
    except BackendError as exc:
        raise _in_cli_words(exc, db) from exc


def _in_cli_words(exc: BackendError, db: str) -> BackendError:
    """A database failure, with the --db to check. (A file or folder in use by another
    process is the connectors' own BackendError, which says so.)"""
    return BackendError(
        f"{exc}; check --db {db} and that the database is running and reachable",
        retriable=exc.retriable,
    )
