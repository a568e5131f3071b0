"""The collection an indexing run writes to, opened so that a run that fails before its first
write leaves no trace.

An existing collection is opened as it is, without the model. A missing one is created only
after ``prepare`` has run (it loads the model, so a wrong path or an unreachable hub fails
before anything exists, and the collection gets the model's true dimensions); with
``recreate`` the old collection is dropped only then too. When the run then fails (an error or
Ctrl-C) before one document was written completely, the collection it created is dropped
again, and so are the embedded database's file or folder when this run created them.

Layer: indexing; reaches the database only through ``m3vdb.connectors``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from m3vdb.connectors.base import Connector
from m3vdb.errors import CollectionNotFoundError
from m3vdb.indexing.interrupts import children_ignore_ctrl_c
from m3vdb.schemas.spec import IndexSpec


@contextmanager
def opened_for_index(
    target: Any,
    collection: str,
    *,
    spec: IndexSpec | None,
    prepare: Callable[[], IndexSpec],
    written: Callable[[], bool],
    options: Any = None,
    recreate: bool = False,
) -> Iterator[Connector]:
    """The collection to index into, closed on exit.

    Args:
        target: the database (URL or client).
        collection: the collection's name.
        spec: what an existing collection is checked against (None: as it was built).
        prepare: called before a collection is created (or dropped, with ``recreate``);
            returns the spec to create it with. It loads the model.
        written: whether the run has written a document completely (asked on failure).
        options: the backend's options.
        recreate: drop the collection first (after ``prepare``).

    Raises:
        whatever opening the collection or the run raises; on the way out, a collection this
        call created and nothing was written to is dropped again.
    """
    from m3vdb.connectors import connect, drop
    from m3vdb.connectors.registry import local_paths

    if not recreate:
        try:
            with children_ignore_ctrl_c():
                existing = connect(
                    target, collection=collection, spec=spec, options=options, create=False
                )
        except CollectionNotFoundError:
            pass
        else:
            try:
                yield existing
            finally:
                existing.close()
            return
    new_spec = prepare()  # the model loads here: nothing has been created or dropped yet
    before = {p for p in local_paths(target) if os.path.lexists(p)}
    with children_ignore_ctrl_c():
        if recreate:
            drop(target, collection=collection, options=options)
        created = connect(target, collection=collection, spec=new_spec, options=options)
    try:
        yield created
    except BaseException:
        if not written():
            _undo(created, target, collection, options, before)
        raise
    finally:
        created.close()


def _undo(created: Connector, target: Any, collection: str, options: Any, before: set[str]) -> None:
    """Drops the collection made by this run, closes it, and removes the embedded files or
    folders that did not exist before it. Best effort: the run's own error is what the user
    must see, so a failure here is not raised over it."""
    from m3vdb.connectors import drop
    from m3vdb.connectors.registry import local_paths

    try:
        with children_ignore_ctrl_c():
            created.close()
            drop(target, collection=collection, options=options)
    except Exception:
        return
    for path in local_paths(target):
        if path in before or not os.path.lexists(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
