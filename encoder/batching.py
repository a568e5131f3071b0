"""Grouping tokenised texts into batches by a token budget.

The encoder packs a batch's texts without padding (``encoder/packed.py``), so a batch's cost
is its real tokens whatever their lengths: texts are sorted longest first (equal lengths end
up adjacent, where attention runs them as one batch) and a batch grows while its total tokens
stay within the budget, which bounds activation memory whatever the input lengths.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], *, token_budget: int, max_batch_size: int
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest texts first.

    Args:
        lengths: token count of each text (special tokens included).
        token_budget: most tokens (the sum of the texts' lengths) in one batch; a text longer
            than the budget still gets a batch of its own.
        max_batch_size: most texts in one batch.
    """
    if token_budget <= 0 or max_batch_size <= 0:
        raise ValueError("token_budget and max_batch_size must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index in order:
        if current and (tokens + lengths[index] > token_budget or len(current) >= max_batch_size):
            batches.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += lengths[index]
    if current:
        batches.append(current)
    return batches
