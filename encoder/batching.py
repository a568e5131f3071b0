"""Grouping tokenised texts into batches by a token budget.

The torch encoder packs a batch's texts without padding (``encoder/packed.py``), so a batch's
cost is its real tokens whatever their lengths: texts are sorted longest first (equal lengths
end up adjacent, where attention runs them as one batch) and a batch grows while its total
tokens stay within the budget, which bounds activation memory whatever the input lengths.

ONNX Runtime runs padded batches (every text as long as the batch's longest), so
``plan_batches(..., padded=True)`` counts the padded tokens against the budget and starts a new
batch rather than pad a text by more than :data:`MAX_PADDING` of the batch. On mixed lengths
that took the ONNX Runtime encoder from 0.8x to 1.0x the torch one (``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

#: The share of a padded batch that may be padding before a shorter text starts a new batch.
MAX_PADDING = 0.02
#: Padded tokens up to which a batch may mix lengths freely: a batch of short texts of several
#: lengths is cheaper than several batches too small to keep the cores busy.
MIN_PADDED_TOKENS = 256


def plan_batches(
    lengths: Sequence[int], *, token_budget: int, max_batch_size: int, padded: bool = False
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest texts first.

    Args:
        lengths: token count of each text (special tokens included).
        token_budget: most tokens (the sum of the texts' lengths; padded: the texts times the
            longest length) in one batch; a text longer than the budget still gets a batch of
            its own.
        max_batch_size: most texts in one batch.
        padded: plan for a runtime that pads every text to the batch's longest (ONNX
            Runtime): a text that would make a batch of more than :data:`MIN_PADDED_TOKENS`
            padded tokens more than :data:`MAX_PADDING` padding starts the next batch.
    """
    if token_budget <= 0 or max_batch_size <= 0:
        raise ValueError("token_budget and max_batch_size must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index in order:
        if current and (
            len(current) >= max_batch_size
            or not _fits(
                len(current) + 1, lengths[current[0]], tokens + lengths[index], token_budget, padded
            )
        ):
            batches.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += lengths[index]
    if current:
        batches.append(current)
    return batches


def _fits(texts: int, longest: int, tokens: int, token_budget: int, padded: bool) -> bool:
    """Whether a batch of ``texts`` texts holding ``tokens`` real tokens, the first (longest)
    of ``longest``, is within the plan's limits."""
    if not padded:
        return tokens <= token_budget
    padded_tokens = texts * longest
    padding = 1 - tokens / padded_tokens
    return padded_tokens <= token_budget and (
        padding <= MAX_PADDING or padded_tokens <= MIN_PADDED_TOKENS
    )
