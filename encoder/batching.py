"""Grouping tokenised texts into batches by a token budget.

Texts are sorted by length (longest first) so each batch holds texts of similar length and
padding stays small; a batch grows while ``count * longest <= budget``, so memory is bounded
by the budget whatever the lengths: one 8192-token text gets a batch of its own, short
queries share one.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], *, token_budget: int, max_batch_size: int
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest texts first.

    Args:
        lengths: token count of each text (special tokens included).
        token_budget: most padded tokens (batch size x longest length) in one batch; a text
            longer than the budget still gets a batch of its own.
        max_batch_size: most texts in one batch.
    """
    if token_budget <= 0 or max_batch_size <= 0:
        raise ValueError("token_budget and max_batch_size must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (
            (len(current) + 1) * longest > token_budget or len(current) >= max_batch_size
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
