from __future__ import annotations

import pytest

from m3vdb.encoder.batching import MAX_PADDING, MIN_PADDED_TOKENS, plan_batches

LENGTHS = [5, 300, 12, 8192, 40, 40, 7, 100, 290, 280, 11, 39]


def test_batches_respect_the_token_budget_and_cover_every_text():
    batches = plan_batches(LENGTHS, token_budget=400, max_batch_size=4)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    for batch in batches:
        assert len(batch) == 1 or sum(LENGTHS[i] for i in batch) <= 400
        assert len(batch) <= 4
    # longest first: the text over the budget alone, then each batch filled to the budget
    assert [[LENGTHS[i] for i in b] for b in batches] == [
        [8192],
        [300],
        [290],
        [280, 100],
        [40, 40, 39, 12],
        [11, 7, 5],
    ]


def test_packed_batches_mix_lengths_since_nothing_is_padded():
    batches = plan_batches(LENGTHS, token_budget=100_000, max_batch_size=64)
    assert len(batches) == 1
    assert [LENGTHS[i] for i in batches[0]] == sorted(LENGTHS, reverse=True)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=0, max_batch_size=1)
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=1, max_batch_size=0)


def _padding(batch: list[int], lengths: list[int]) -> float:
    return 1 - sum(lengths[i] for i in batch) / (len(batch) * max(lengths[i] for i in batch))


def test_padded_batches_count_padding_against_the_budget_and_limit_it():
    """ONNX Runtime pads every text to the batch's longest: the padded tokens stay within the
    budget, a batch of more than MIN_PADDED_TOKENS padded tokens is at most MAX_PADDING
    padding, and short texts of several lengths still share a batch."""
    lengths = [300, 298, 297, 250, 249, 40, 39, 38, 12, 11, 10, 9, 8000, 260]
    batches = plan_batches(lengths, token_budget=1000, max_batch_size=8, padded=True)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 1000
        assert len(batch) <= 8
        assert len(batch) * longest <= MIN_PADDED_TOKENS or _padding(batch, lengths) <= MAX_PADDING
    assert [[lengths[i] for i in b] for b in batches] == [
        [8000],
        [300, 298, 297],
        [260, 250],
        [249],
        [40, 39, 38, 12, 11, 10],
        [9],
    ]
    # the packed planner would have mixed them: padding is what the padded one avoids
    assert any(
        _padding(b, lengths) > MAX_PADDING
        for b in plan_batches(lengths, token_budget=1000, max_batch_size=8)
    )
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=0, max_batch_size=1, padded=True)
