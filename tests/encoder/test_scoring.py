from __future__ import annotations

import numpy as np
import pytest

from m3vdb import InputError, M3Embedding
from m3vdb.encoder import (
    colbert_maxsim,
    colbert_score,
    combined_score,
    dense_score,
    sparse_score,
)


def test_scores_follow_flagembedding_definitions():
    q = M3Embedding(
        dense=np.array([0.6, 0.8], np.float32),
        sparse={5: 0.5, 7: 0.25},
        colbert=np.array([[1, 0], [0, 1]], np.float32),
    )
    p = M3Embedding(
        dense=np.array([0.8, 0.6], np.float32),
        sparse={5: 2.0, 9: 1.0},
        colbert=np.array([[0.6, 0.8], [1, 0]], np.float32),
    )
    assert dense_score(q, p) == pytest.approx(0.96)
    assert sparse_score(q, p) == pytest.approx(1.0)  # only token 5 is shared: 0.5 * 2.0
    # row 0 best = 1.0 (with [1, 0]); row 1 best = 0.8 (with [0.6, 0.8])
    assert colbert_maxsim(q.colbert, p.colbert) == pytest.approx(1.8)  # databases: the sum
    assert colbert_score(q, p) == pytest.approx(0.9)  # FlagEmbedding: the mean
    expected = (0.4 * 0.96 + 0.2 * 1.0 + 0.4 * 0.9) / 1.0
    assert combined_score(q, p) == pytest.approx(expected)
    assert combined_score(q, p, weights=(1, 1, 0)) == pytest.approx((0.96 + 1.0) / 2)


def test_missing_output_is_a_clear_error():
    with pytest.raises(InputError, match="sparse=True"):
        sparse_score(M3Embedding(sparse={1: 1.0}), M3Embedding())
    with pytest.raises(InputError, match="weights"):
        combined_score(M3Embedding(), M3Embedding(), weights=(0, 0, 0))
