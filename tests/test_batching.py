from __future__ import annotations

import pytest

from encoder.batching import plan_batches


def test_batches_respect_the_token_budget_and_cover_every_text():
    lengths = [5, 300, 12, 8192, 40, 40, 7, 100]
    batches = plan_batches(lengths, token_budget=400, max_batch_size=4)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 400
        assert len(batch) <= 4
    # longest first, each batch sorted longest first
    assert batches[0] == [3]
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


def test_bad_budget_is_refused():
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=0, max_batch_size=1)
