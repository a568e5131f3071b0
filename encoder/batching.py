"""Grouping tokenised texts into batches by a token budget and a padding bound.

Texts are sorted by length (longest first). A batch grows while ``count * longest`` stays
within the token budget (so memory is bounded whatever the lengths: one 8192-token text gets
a batch of its own, short queries share one) AND the next text is at least ``min_fill`` of
the batch's longest (so padding, which costs as much compute as real tokens, stays under
``1 / min_fill - 1`` of the batch: a mixed corpus becomes a few batches of similar lengths
instead of one batch padded to its longest text).
"""

from __future__ import annotations

from collections.abc import Sequence

# A batch's shortest text is at least this fraction of its longest: <= 25% padding.
DEFAULT_MIN_FILL = 0.8


def plan_batches(
    lengths: Sequence[int],
    *,
    token_budget: int,
    max_batch_size: int,
    min_fill: float = DEFAULT_MIN_FILL,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest texts first.

    Args:
        lengths: token count of each text (special tokens included).
        token_budget: most padded tokens (batch size x longest length) in one batch; a text
            longer than the budget still gets a batch of its own.
        max_batch_size: most texts in one batch.
        min_fill: a text joins a batch only if its length is at least this fraction of the
            batch's longest (0 disables the padding bound).
    """
    if token_budget <= 0 or max_batch_size <= 0:
        raise ValueError("token_budget and max_batch_size must be positive")
    if not 0 <= min_fill <= 1:
        raise ValueError(f"min_fill must be in [0, 1], got {min_fill}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current:
            longest = lengths[current[0]]
            over_budget = (len(current) + 1) * longest > token_budget
            too_short = lengths[index] < min_fill * longest
            if over_budget or too_short or len(current) >= max_batch_size:
                batches.append(current)
                current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
