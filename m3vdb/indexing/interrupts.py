"""Ctrl-C that never cuts a write.

:class:`InterruptGuard` lets SIGINT interrupt reading and encoding at once, and holds it back
while a batch's deletes and writes run, so a collection never holds half of a document.
:func:`children_ignore_ctrl_c` keeps an embedded engine's child process (Milvus Lite's server)
alive while this process finishes its batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class InterruptGuard:
    """Ctrl-C that never cuts a write: SIGINT raises KeyboardInterrupt at once while the job
    encodes, and is held back (then raised) while a batch's deletes and writes run, so the
    collection never holds half of a document."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A block that runs to its end; a Ctrl-C during it is raised after it."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending:
                self._pending = False
                raise KeyboardInterrupt


@contextmanager
def children_ignore_ctrl_c() -> Iterator[None]:
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
