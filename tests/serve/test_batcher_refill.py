"""The batcher's refill wait: clients that send one request at a time and come back as soon
as they are answered share one forward pass each round, instead of splitting into small
batches (no HTTP, no model: a stand-in encoder whose pass takes a fixed time; it tests the
scheduling only, the encoder's outputs are tested elsewhere)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from m3vdb.schemas.data import M3Embedding
from m3vdb.serve import batcher as batcher_module
from m3vdb.serve.batcher import DynamicBatcher, Outputs


class TimedPasses:
    """Stand-in encoder: each pass sleeps ``seconds`` and logs how many texts it ran."""

    token_budget = 10_000
    max_batch_size = 256

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sizes: list[int] = []

    def encode_token_ids(self, ids: Sequence[Sequence[int]], **_: bool) -> list[M3Embedding]:
        self.sizes.append(len(ids))
        time.sleep(self.seconds)
        return [M3Embedding(dense=np.zeros(2, np.float32)) for _ in ids]


def run_clients(batcher: DynamicBatcher, clients: int, rounds: int, think_s: float) -> None:
    """``clients`` threads, each sending one text, waiting for it, pausing ``think_s``."""

    def client() -> None:
        for _ in range(rounds):
            batcher.submit([[5] * 10], Outputs()).future.result(60)
            time.sleep(think_s)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


@pytest.fixture
def long_refill(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refill limit far above the clients' turnaround (20 passes of 50 ms: 1 s against
    5 ms): the wait ends on its condition (the clients are back), not on the clock, however
    loaded the machine."""
    monkeypatch.setattr(batcher_module, "REFILL_SHARE", 20.0)
    monkeypatch.setattr(batcher_module, "MAX_REFILL_S", 30.0)


def test_returning_clients_share_one_pass_per_round(long_refill: None) -> None:
    """The clients take 5 ms to come back, longer than the idle wait (max_wait_s=0: the
    server's default is 2 ms), as HTTP clients do."""
    encoder = TimedPasses(0.05)
    batcher = DynamicBatcher(encoder, max_pending_inputs=1000, max_wait_s=0.0)
    batcher.start()
    run_clients(batcher, clients=8, rounds=4, think_s=0.005)
    batcher.close(30)
    # the first pass may start before every client arrived (then the client it answered
    # finishes a round early, and the last pass lacks it); the others hold every client
    # (without the refill wait, the first client back starts a pass: [8, 5, 3, ...])
    assert sum(encoder.sizes) == 32
    assert encoder.sizes.count(8) >= 3, encoder.sizes


def test_a_lone_sequential_client_never_waits_for_others(long_refill: None) -> None:
    """One client is the only one in flight, so the refill wait (up to 4 s after each 0.2 s
    pass here) never applies: 5 rounds take ~1 s, not ~20 s."""
    encoder = TimedPasses(0.2)
    batcher = DynamicBatcher(encoder, max_pending_inputs=1000, max_wait_s=0.0)
    batcher.start()
    start = time.monotonic()
    run_clients(batcher, clients=1, rounds=5, think_s=0.0)
    elapsed = time.monotonic() - start
    batcher.close(30)
    assert encoder.sizes == [1] * 5
    assert elapsed < 10, f"5 sequential requests took {elapsed:.1f} s: the refill wait ran"
