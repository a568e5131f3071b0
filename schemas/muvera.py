"""MUVERA fixed dimensional encodings (FDE) of ColBERT rows (numpy only).

Dhulipala, Hadian, Jayaram, Lee, Mirrokni: "MUVERA: Multi-Vector Retrieval via Fixed
Dimensional Encodings" (Google, NeurIPS 2024). A set of token vectors becomes ONE vector whose
inner product with a query's approximates the MaxSim (Chamfer) score, so a single-vector index
finds candidates that exact MaxSim then reranks.

One repetition, with ``B = 2**k_sim`` buckets:

1. SimHash: ``k_sim`` Gaussian hyperplanes; a token's bucket is its pattern of signs.
2. Projection: each token times a random +-1 matrix scaled by ``1/sqrt(d_proj)`` (inner
   products kept in expectation), down to ``d_proj`` dimensions.
3. A query SUMS the projected tokens of each bucket (empty buckets stay zero); a document
   AVERAGES them, and fills each empty bucket with the projected token whose sign pattern is
   nearest in Hamming distance (so every query token meets some document token).

Repetitions are concatenated (``repetitions * B * d_proj`` dimensions), optionally followed by
a count sketch to ``final_dim``. Then ``<fde_query(q), fde_document(d)>`` is about
``repetitions * maxsim(q, d)`` (a database's MaxSim scale, the sum over query rows): each
query token lands in a bucket where the document's average stands for its nearest tokens.

Every matrix is drawn from ``ColbertFde.seed`` with numpy's PCG64, so a collection's
documents and every later query are encoded alike; the seed is recorded with the collection
(``IndexSpec.colbert_fde``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from m3vdb.errors import InputError
from m3vdb.schemas.spec import ColbertFde


class FdeEncoder:
    """The random matrices of one :class:`ColbertFde` config at one token dimension; encodes
    documents and queries. Build it with :func:`fde_encoder` (cached per config)."""

    def __init__(self, config: ColbertFde, dim: int) -> None:
        if dim <= 0:
            raise InputError(f"the ColBERT dimension must be positive, got {dim}")
        self.config = config
        self.token_dim = dim
        rng = np.random.default_rng(config.seed)
        reps, k_sim, d_proj = config.repetitions, config.k_sim, config.d_proj
        # (dim, reps * k_sim): one matrix product gives every repetition's sign bits
        self._hyperplanes = rng.standard_normal((dim, reps * k_sim)).astype(np.float32)
        signs = rng.integers(0, 2, size=(dim, reps * d_proj), dtype=np.int8) * 2 - 1
        self._projection = (signs / np.sqrt(d_proj)).astype(np.float32)
        self._buckets = 2**k_sim
        # bucket b's sign pattern, bit i = (b >> i) & 1, as the token bits are read below
        self._bucket_bits = (np.arange(self._buckets)[:, None] >> np.arange(k_sim)) & 1
        self._powers = 2 ** np.arange(k_sim)
        self._sketch: tuple[np.ndarray, np.ndarray] | None = None
        full = reps * self._buckets * d_proj
        if config.final_dim is not None:
            # count sketch: coordinate i goes to slot h(i) with sign s(i)
            slots = rng.integers(0, config.final_dim, size=full)
            sketch_signs = (rng.integers(0, 2, size=full) * 2 - 1).astype(np.float32)
            self._sketch = (slots, sketch_signs)

    @property
    def dim(self) -> int:
        """Dimensions of an encoding."""
        return self.config.dim

    def _partition(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per token and repetition: sign bits ``(n, reps, k_sim)``, bucket ``(n, reps)`` and
        projected vector ``(n, reps, d_proj)``."""
        c = self.config
        x = np.asarray(rows, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.token_dim or not len(x):
            raise InputError(
                f"an FDE encodes ColBERT rows of shape (n >= 1, {self.token_dim}), got {x.shape}"
            )
        bits = (x @ self._hyperplanes > 0).reshape(len(x), c.repetitions, c.k_sim)
        buckets = bits.astype(np.int64) @ self._powers
        projected = (x @ self._projection).reshape(len(x), c.repetitions, c.d_proj)
        return bits, buckets, projected

    def _sums(self, buckets: np.ndarray, projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per repetition and bucket: the sum of its projected tokens ``(reps, B, d_proj)``
        and their count ``(reps, B)``."""
        c = self.config
        cells = c.repetitions * self._buckets
        # one flat cell per (repetition, bucket); bincount is a single C pass per column
        # (np.add.at is several times slower)
        flat = (np.arange(c.repetitions) * self._buckets + buckets).reshape(-1)
        values = projected.reshape(-1, c.d_proj).astype(np.float64)
        sums = np.stack(
            [np.bincount(flat, weights=values[:, j], minlength=cells) for j in range(c.d_proj)],
            axis=1,
        )
        counts = np.bincount(flat, minlength=cells)
        return (
            sums.astype(np.float32).reshape(c.repetitions, self._buckets, c.d_proj),
            counts.reshape(c.repetitions, self._buckets),
        )

    def _finish(self, blocks: np.ndarray) -> np.ndarray:
        flat = blocks.reshape(-1)
        if self._sketch is None:
            return flat.astype(np.float32)
        slots, signs = self._sketch
        out = np.zeros(self.dim, dtype=np.float32)
        np.add.at(out, slots, flat * signs)
        return out

    def query(self, rows: np.ndarray) -> np.ndarray:
        """The FDE of a query's ColBERT rows: per bucket, the SUM of its tokens."""
        _, buckets, projected = self._partition(rows)
        sums, _ = self._sums(buckets, projected)
        return self._finish(sums)

    def document(self, rows: np.ndarray) -> np.ndarray:
        """The FDE of a document's ColBERT rows: per bucket, the AVERAGE of its tokens; an
        empty bucket takes the token whose sign pattern is nearest (Hamming; ties: the first
        row)."""
        return self._document(*self._partition(rows))

    def _document(self, bits: np.ndarray, buckets: np.ndarray, projected: np.ndarray) -> np.ndarray:
        sums, counts = self._sums(buckets, projected)
        filled = counts > 0
        out = sums / np.maximum(counts, 1)[..., None]
        empty_r, empty_b = np.nonzero(~filled)
        if len(empty_r):
            # (empty, n): Hamming distance of each empty bucket to each token's bits
            distance = (bits[:, empty_r, :] != self._bucket_bits[empty_b][None]).sum(axis=2).T
            nearest = distance.argmin(axis=1)
            out[empty_r, empty_b] = projected[nearest, empty_r]
        return self._finish(out)

    def documents(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """The FDEs of several documents, ``(len(batch), dim)`` float32 (the projections of
        the whole batch in one matrix product)."""
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        if not len(batch):
            return out
        for i, rows in enumerate(batch):
            if np.ndim(rows) != 2 or not len(rows):
                raise InputError(
                    f"an FDE encodes ColBERT rows of shape (n >= 1, {self.token_dim}), got "
                    f"{np.shape(rows)} (document {i} of the batch)"
                )
        bits, buckets, projected = self._partition(np.concatenate(batch))
        start = 0
        for i, rows in enumerate(batch):
            end = start + len(rows)
            out[i] = self._document(bits[start:end], buckets[start:end], projected[start:end])
            start = end
        return out


@lru_cache(maxsize=8)
def fde_encoder(config: ColbertFde, dim: int) -> FdeEncoder:
    """The (cached) encoder of ``config`` for tokens of ``dim`` dimensions: its matrices are
    drawn once per process."""
    return FdeEncoder(config, dim)
