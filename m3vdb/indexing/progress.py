"""The progress an indexing run shows on stderr: documents done out of the total, what it is
doing now (encoding, writing) and the tokens encoded so far, updated after every forward pass
and every write slice, so a run that spends minutes on one long document shows it moving
from its first second instead of after its first batch of documents."""

from __future__ import annotations

import time
from typing import Any


class Progress:
    """A tqdm bar in documents whose postfix says the stage and the tokens encoded so far.

    Args:
        total: the documents of the run, when known.
        enabled: False draws nothing (every method still works).
    """

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        from tqdm.auto import tqdm

        # delay: a run that ends within a second draws no bar; mininterval: redraws are cheap
        self._bar: Any = tqdm(
            total=total, unit="doc", desc="index", delay=1.0, mininterval=0.2, disable=not enabled
        )
        self._start = time.perf_counter()
        self.tokens = 0
        self._stage = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def stage(self, name: str) -> None:
        self._stage = name
        self._redraw()

    def encoded(self, tokens: int) -> None:
        """``tokens`` more encoded (called after each forward pass)."""
        self.tokens += tokens
        self._redraw()

    def documents(self, n: int) -> None:
        self._bar.update(n)
        self._redraw()

    def written(self, entries: int) -> None:
        """A write slice of ``entries`` entries went through."""
        self._redraw()

    def _redraw(self) -> None:
        seconds = time.perf_counter() - self._start
        rate = self.tokens / seconds if seconds > 0 else 0.0
        stage = f"{self._stage}, " if self._stage else ""
        self._bar.set_postfix_str(f"{stage}{self.tokens:,} tok, {rate:,.0f} tok/s", refresh=False)
        self._bar.update(0)  # draws once the delay and the redraw interval have passed
