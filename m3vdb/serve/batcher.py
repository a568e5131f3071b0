"""Dynamic batching across requests: one model, one worker thread, one bounded queue.

Requests put their tokenised texts in the queue and wait on a future. Before every forward
pass the worker plans batches over ALL the texts waiting, with the encoder's own planner
(token budget: ``m3vdb.encoder.batching.plan_batches``), and runs the
fullest planned batch (most real tokens): the others keep filling up with the texts that
arrive meanwhile, so batches grow across requests as they would if every text were known up
front. No text waits forever: once the oldest waiting text has been passed over
``MAX_SKIPS`` times, its batch runs next. When the model is idle, the first arrival waits at
most ``max_wait_s`` for others (less if the waiting tokens fill the token budget). A request
is answered as soon as its last text is done.

Clients that send one request at a time come back as soon as they are answered. If the
worker started the next pass at once, it would take only the requests that happened to
arrive during the last pass: 32 such clients split into small batches that cost more per
text (``bench/serve.py``: a mean batch of 8-12 texts for 32 clients). So the worker notes how
many texts the server held when a pass ended (that pass's and those queued meanwhile: the
clients in flight), and before the next pass waits until as many are queued again, or the
token budget is full, for at most ``REFILL_SHARE`` of the last pass's duration
(``MAX_REFILL_S`` at most). A lone sequential client never waits (it is the only one held);
clients that went away are not counted at the next pass. During that wait the cores answer
and parse requests instead of competing with the model for them. So 32 clients sending one
text each cost about what one client sending 32 texts costs, and a text's outputs do not
depend on which request it came with beyond fp32 batching noise (the matrix multiplies'
blocking depends on the batch's total tokens: ~1e-7 on the tiny test checkpoint; 2.8e-6
measured on the real architecture by ``bench/serve.py`` with the padded batches of m3vdb 0.2).

The bound is on texts admitted and not yet answered (``max_pending_inputs``): beyond it
``submit`` raises ``QueueFullError`` with a retry delay estimated from the recent throughput.
A request whose future is cancelled (its client went away) is removed from the queue: its
texts not yet in a forward pass are never computed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from m3vdb.encoder.batching import plan_batches
from m3vdb.errors import BackendError
from m3vdb.schemas.data import M3Embedding

if TYPE_CHECKING:
    from m3vdb.serve.metrics import ServeMetrics

# How many forward passes may run other texts while the oldest waiting text waits.
MAX_SKIPS = 4
# After a forward pass, how long the worker may wait for the clients it just answered to send
# their next request: this share of that pass's duration, and at most MAX_REFILL_S seconds.
REFILL_SHARE = 0.5
MAX_REFILL_S = 0.1


class TokenEncoder(Protocol):
    """What the batcher needs of an encoder (``M3Encoder`` has it)."""

    token_budget: int
    max_batch_size: int

    def encode_token_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
    ) -> list[M3Embedding]: ...


class QueueFullError(BackendError):
    """The server holds as many texts as it may; retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retriable=True)
        self.retry_after_s = retry_after_s


class BatcherClosedError(BackendError):
    """The server is shutting down and takes no new work."""

    def __init__(self) -> None:
        super().__init__(
            "the server is shutting down and takes no new requests; retry on another instance "
            "or after it restarts",
            retriable=True,
        )


@dataclass(frozen=True)
class Outputs:
    """Which of the three outputs a request wants."""

    dense: bool = True
    sparse: bool = False
    colbert: bool = False

    def union(self, other: Outputs) -> Outputs:
        return Outputs(
            self.dense or other.dense, self.sparse or other.sparse, self.colbert or other.colbert
        )

    def select(self, emb: M3Embedding) -> M3Embedding:
        """``emb`` with only the outputs asked for (a batch computes the union of its
        requests' outputs: one forward pass; the heads cost ~1/12 of one layer)."""
        return M3Embedding(
            emb.dense if self.dense else None,
            emb.sparse if self.sparse else None,
            emb.colbert if self.colbert else None,
        )


class Job:
    """One request's texts in the queue; ``future`` gets one embedding per text, in order.
    Cancelling the future drops the work not yet done."""

    def __init__(self, ids: list[list[int]], outputs: Outputs) -> None:
        self.ids = ids
        self.outputs = outputs
        self.tokens = sum(len(x) for x in ids)
        self.future: Future[list[M3Embedding]] = Future()
        self.enqueued = time.monotonic()
        self._results: list[M3Embedding | None] = [None] * len(ids)
        self._remaining = len(ids)
        self._waiting = list(range(len(ids)))  # texts not yet taken into a batch
        self._skips = 0  # forward passes that ran other texts while this job was the oldest
        self._released = False  # its texts no longer count against the bound

    @property
    def cancelled(self) -> bool:
        return self.future.cancelled()

    def _deliver(self, index: int, emb: M3Embedding) -> bool:
        """Stores one text's result; True when that completed the job."""
        self._results[index] = self.outputs.select(emb)
        self._remaining -= 1
        if self._remaining:
            return False
        try:
            self.future.set_result(self._results)  # type: ignore[arg-type]
        except InvalidStateError:  # cancelled meanwhile by its client
            pass
        return True

    def _fail(self, exc: BaseException) -> None:
        try:
            self.future.set_exception(exc)
        except InvalidStateError:
            pass


class DynamicBatcher:
    """Forms batches across requests and runs them on one worker thread.

    Args:
        encoder: the model (``M3Encoder`` or anything with ``encode_token_ids``,
            ``token_budget`` and ``max_batch_size``).
        max_pending_inputs: most texts admitted and not yet answered.
        max_wait_s: longest wait after the oldest arrival for other requests to join.
        metrics: where batch sizes, queue depth and dropped texts are recorded.
    """

    def __init__(
        self,
        encoder: TokenEncoder,
        *,
        max_pending_inputs: int,
        max_wait_s: float,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self._encoder = encoder
        self._max_pending = max_pending_inputs
        self._max_wait = max_wait_s
        self._metrics = metrics
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._queued_tokens = 0
        self._admitted_inputs = 0  # queued or being encoded, not yet answered
        self._admitted_tokens = 0
        self._tokens_per_s = 0.0  # recent throughput, for Retry-After
        # the texts held when the last pass ended (the clients in flight), when it ended and
        # how long it took: the refill wait before the next pass
        self._in_flight = 0
        self._last_end = 0.0
        self._last_seconds = 0.0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="m3vdb-batcher", daemon=True)

    # ------------------------------------------------------------------ request side

    def start(self) -> None:
        self._thread.start()

    @property
    def pending_inputs(self) -> int:
        """Texts admitted and not yet answered."""
        with self._cond:
            return self._admitted_inputs

    @property
    def accepting(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def submit(self, ids: list[list[int]], outputs: Outputs) -> Job:
        """Queues one request's token ids.

        Raises:
            QueueFullError: admitting them would exceed ``max_pending_inputs``.
            BatcherClosedError: the batcher is closing.
        """
        job = Job(ids, outputs)
        with self._cond:
            if self._closing:
                raise BatcherClosedError()
            if self._admitted_inputs + len(ids) > self._max_pending:
                raise QueueFullError(
                    f"the server holds {self._admitted_inputs} texts waiting or being encoded; "
                    f"{len(ids)} more would exceed its limit of {self._max_pending} "
                    "(--max-pending-inputs): retry after the Retry-After delay",
                    retry_after_s=self._retry_after(),
                )
            self._admitted_inputs += len(ids)
            self._admitted_tokens += job.tokens
            self._queue.append(job)
            self._queued_tokens += job.tokens
            self._observe_queue()
            self._cond.notify()
        job.future.add_done_callback(lambda _: self._on_done(job))
        return job

    def close(self, timeout: float | None = None) -> None:
        """Stops taking requests, finishes the queued ones, and joins the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _retry_after(self) -> int:
        if self._tokens_per_s <= 0:
            return 1
        return max(1, min(60, math.ceil(self._admitted_tokens / self._tokens_per_s)))

    def _on_done(self, job: Job) -> None:
        """Releases a finished, failed or cancelled job's share of the bound (once)."""
        with self._cond:
            if job._released:
                return
            job._released = True
            self._admitted_inputs -= len(job.ids)
            self._admitted_tokens -= job.tokens
            if job.cancelled and self._metrics is not None:
                self._metrics.dropped_inputs.inc(job._remaining)
            if job in self._queue:  # cancelled or failed: its waiting texts never run
                self._queue.remove(job)
                self._queued_tokens -= sum(len(job.ids[i]) for i in job._waiting)
                job._waiting = []
            self._observe_queue()

    def _observe_queue(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(sum(len(j._waiting) for j in self._queue))
            self._metrics.pending_inputs.set(self._admitted_inputs)

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._process(batch)

    def _take(self) -> list[tuple[Job, int]] | None:
        """The next batch: (job, text index) pairs; None when closing with nothing left."""
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            # Idle model: give other requests a moment to join the first one.
            deadline = self._queue[0].enqueued + self._max_wait
            while not self._closing and self._queued_tokens < self._encoder.token_budget:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._queue:
                    break
                self._cond.wait(remaining)
            self._wait_for_clients_in_flight()
            if not self._queue:
                return [] if not self._closing else None
            # every waiting text, oldest first; plan them all
            entries = [(job, i) for job in self._queue for i in job._waiting]
            lengths = [len(job.ids[i]) for job, i in entries]
            batches = plan_batches(
                lengths,
                token_budget=self._encoder.token_budget,
                max_batch_size=self._encoder.max_batch_size,
            )
            # the fullest batch (most real tokens) while smaller ones keep filling up with new
            # arrivals; the oldest text's batch once that text was passed over MAX_SKIPS times
            oldest = self._queue[0]
            pick = max(batches, key=lambda b: sum(lengths[k] for k in b))
            if 0 not in pick:
                if oldest._skips >= MAX_SKIPS:
                    pick = next(b for b in batches if 0 in b)
                else:
                    oldest._skips += 1
            chosen = [entries[k] for k in pick]
            for job, i in chosen:
                job._waiting.remove(i)
                self._queued_tokens -= len(job.ids[i])
            for job in {id(j): j for j, _ in chosen}.values():
                if not job._waiting:
                    self._queue.remove(job)
            self._observe_queue()
            return chosen

    def _wait_for_clients_in_flight(self) -> None:
        """Waits (inside ``_cond``) until as many texts are queued as the server held when the
        last pass ended, or the token budget is full, or the refill time is up (see the
        module docstring)."""
        deadline = self._last_end + min(REFILL_SHARE * self._last_seconds, MAX_REFILL_S)
        while not self._closing and self._queued_tokens < self._encoder.token_budget:
            if sum(len(job._waiting) for job in self._queue) >= self._in_flight:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _process(self, batch: list[tuple[Job, int]]) -> None:
        live = [(job, i) for job, i in batch if not job.future.done()]
        if not live:
            return
        jobs = list({id(j): j for j, _ in live}.values())
        outputs = jobs[0].outputs
        for job in jobs[1:]:
            outputs = outputs.union(job.outputs)
        ids = [job.ids[i] for job, i in live]
        start = time.perf_counter()
        try:
            embs = self._encoder.encode_token_ids(
                ids, dense=outputs.dense, sparse=outputs.sparse, colbert=outputs.colbert
            )
        except Exception as exc:  # answer the requests instead of killing the worker
            with self._cond:
                self._in_flight = 0
            for job in jobs:
                job._fail(exc)
            return
        seconds = time.perf_counter() - start
        tokens = sum(len(x) for x in ids)
        if seconds > 0:
            rate = tokens / seconds
            self._tokens_per_s = (
                rate if not self._tokens_per_s else 0.8 * self._tokens_per_s + 0.2 * rate
            )
        if self._metrics is not None:
            self._metrics.observe_batch(len(ids), tokens, seconds)
        with self._cond:  # before delivering: the clients of this pass still count
            self._in_flight = self._admitted_inputs
            self._last_seconds = seconds
            self._last_end = time.monotonic()
        for (job, i), emb in zip(live, embs):
            if not job.future.done():
                job._deliver(i, emb)
