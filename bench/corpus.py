"""A benchmark corpus with a realistic spread of lengths and languages, deterministic.

Texts are built from the multilingual sentences in ``tests/data/multilingual.txt`` until they
reach a target token count drawn log-uniformly between ``min_tokens`` and ``max_tokens``
(most texts short, a long tail up to 8192 tokens, as in real document collections).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

SENTENCES = (
    (Path(__file__).parent.parent / "tests" / "data" / "multilingual.txt")
    .read_text(encoding="utf-8")
    .splitlines()
)


def make_corpus(
    n_texts: int,
    count_tokens: Callable[[str], int],
    *,
    min_tokens: int = 16,
    max_tokens: int = 8192,
    seed: int = 0,
) -> list[str]:
    """``n_texts`` texts whose token counts (by ``count_tokens``) spread log-uniformly over
    [min_tokens, max_tokens]; each text mixes sentences of several languages."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n_texts):
        target = int(math.exp(rng.uniform(math.log(min_tokens), math.log(max_tokens))))
        parts: list[str] = []
        # grow by sentences, estimating from the last count, then trim words to the target
        while True:
            parts.append(rng.choice(SENTENCES))
            if len(parts) % 8 == 0 or len(parts) * 12 >= target:
                if count_tokens(" ".join(parts)) >= target:
                    break
        words = " ".join(parts).split(" ")
        lo, hi = 1, len(words)
        while lo < hi:  # fewest words reaching the target
            mid = (lo + hi) // 2
            if count_tokens(" ".join(words[:mid])) >= target:
                hi = mid
            else:
                lo = mid + 1
        texts.append(" ".join(words[:lo]))
    return texts
