"""Token pooling (schemas/pooling.py) against a direct computation: Ward clusters of the rows,
each cluster's mean re-normalised."""

from __future__ import annotations

import numpy as np
import pytest

from m3vdb.errors import InputError
from m3vdb.schemas.pooling import pool_rows, pooled_row_count


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_pooling_merges_the_closest_rows_into_unit_means() -> None:
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((3, 16)))
    # two near-copies of each of three directions: factor 2 must find the pairs
    rows = _unit(np.repeat(centres, 2, axis=0) + 0.01 * rng.standard_normal((6, 16)))
    pooled = pool_rows(rows.astype(np.float32), 2)
    assert pooled.shape == (3, 16) and pooled.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)
    expected = _unit(rows.reshape(3, 2, 16).mean(axis=1))
    np.testing.assert_allclose(pooled, expected, atol=1e-6)  # in first-row order


@pytest.mark.parametrize(("n", "factor", "kept"), [(1, 2, 1), (3, 2, 1), (10, 3, 3), (7, 1, 7)])
def test_row_counts(n: int, factor: int, kept: int) -> None:
    rows = _unit(np.random.default_rng(n).standard_normal((n, 8))).astype(np.float32)
    assert pooled_row_count(n, factor) == kept
    assert pool_rows(rows, factor).shape == (kept, 8)


def test_factor_one_is_the_identity_and_bad_input_is_refused() -> None:
    rows = _unit(np.random.default_rng(1).standard_normal((5, 8))).astype(np.float32)
    np.testing.assert_array_equal(pool_rows(rows, 1), rows)
    with pytest.raises(InputError):
        pool_rows(rows, 0)
    with pytest.raises(InputError):
        pool_rows(rows[0], 2)
