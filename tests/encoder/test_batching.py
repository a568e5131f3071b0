from __future__ import annotations

import pytest

from m3vdb.encoder.batching import plan_batches

LENGTHS = [5, 300, 12, 8192, 40, 40, 7, 100, 290, 280, 11, 39]


def test_batches_respect_the_token_budget_and_cover_every_text():
    batches = plan_batches(LENGTHS, token_budget=400, max_batch_size=4, min_fill=0)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    for batch in batches:
        longest = max(LENGTHS[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 400
        assert len(batch) <= 4
    # longest first, each batch sorted longest first
    assert batches[0] == [3]
    flat = [LENGTHS[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


def test_padding_is_bounded_by_min_fill():
    batches = plan_batches(LENGTHS, token_budget=100_000, max_batch_size=64, min_fill=0.8)
    for batch in batches:
        sizes = [LENGTHS[i] for i in batch]
        assert min(sizes) >= 0.8 * max(sizes)
    assert [[LENGTHS[i] for i in b] for b in batches] == [
        [8192],
        [300, 290, 280],
        [100],
        [40, 40, 39],
        [12, 11],
        [7],
        [5],
    ]
    # without the bound, everything but the longest text shares one padded batch
    assert len(plan_batches(LENGTHS, token_budget=100_000, max_batch_size=64, min_fill=0)) == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=0, max_batch_size=1)
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=1, max_batch_size=1, min_fill=1.5)
