"""Synthetic documents with precomputed BGE-M3-shaped embeddings, for the database benchmarks.

The database's cost depends on the sizes of what it stores, not on the values: so each
document gets a token count drawn log-uniformly (like ``bench/corpus.py``), a text of about
4 characters per token, a random L2-normalised dense vector (1024), sparse weights on
``clip(0.7 x tokens, 8, 200)`` distinct token ids drawn from a Zipf law over the 250,002-id
vocabulary (real text reuses frequent tokens, which makes the inverted index's posting lists
skewed as in real use), and ``tokens - 1`` L2-normalised ColBERT rows. Deterministic by seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from corpus import SENTENCES

from m3vdb.schemas.data import Document, M3Embedding

VOCAB = 250002
DIM = 1024
LANGS = ("en", "de", "fr", "zh", "ar", "ru")


def token_count(rng: np.random.Generator, min_tokens: int, max_tokens: int) -> int:
    """A token count drawn log-uniformly from [min_tokens, max_tokens]."""
    return int(math.exp(rng.uniform(math.log(min_tokens), math.log(max_tokens))))


def embedding(rng: np.random.Generator, tokens: int, *, colbert: bool = True) -> M3Embedding:
    """An M3Embedding of realistic sizes for a text of ``tokens`` tokens (specials included)."""
    dense = rng.standard_normal(DIM).astype(np.float32)
    dense /= np.linalg.norm(dense)
    wanted = int(np.clip(0.7 * tokens, 8, 200))
    draws = np.minimum(rng.zipf(1.2, size=3 * wanted), VOCAB - 5) + 4  # ids 0..4 are special
    ids = np.unique(draws)[:wanted]
    weights = rng.uniform(0.01, 0.35, size=len(ids))
    rows = None
    if colbert:
        rows = rng.standard_normal((tokens - 1, DIM)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return M3Embedding(dense, dict(zip(ids.tolist(), weights.tolist())), rows)


def text_of(rng: np.random.Generator, tokens: int) -> str:
    """About 4 characters per token of multilingual text."""
    parts: list[str] = []
    size = 0
    while size < 4 * tokens:
        parts.append(SENTENCES[int(rng.integers(len(SENTENCES)))])
        size += len(parts[-1]) + 1
    return " ".join(parts)[: 4 * tokens]


def items(
    n: int,
    *,
    seed: int = 0,
    min_tokens: int = 16,
    max_tokens: int = 512,
    colbert: bool = True,
) -> Iterator[tuple[Document, M3Embedding]]:
    """``n`` (Document, M3Embedding) pairs, generated lazily (100k documents are never held)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        tokens = token_count(rng, min_tokens, max_tokens)
        doc = Document(f"doc-{i}", text_of(rng, tokens), {"lang": LANGS[i % len(LANGS)], "n": i})
        yield doc, embedding(rng, tokens, colbert=colbert)


def queries(n: int, *, seed: int = 1, colbert: bool = True) -> list[M3Embedding]:
    """``n`` query embeddings of 8 to 32 tokens."""
    rng = np.random.default_rng(seed)
    return [embedding(rng, token_count(rng, 8, 32), colbert=colbert) for _ in range(n)]
