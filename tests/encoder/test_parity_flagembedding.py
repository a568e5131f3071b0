"""Parity with the reference, FlagEmbedding's ``BGEM3FlagModel``, on the tiny checkpoint.

FlagEmbedding is not a dependency of m3vdb (1.4.x does not import under transformers 5), so
this runs only where it is installed, e.g. a scratch virtualenv::

    pip install torch==2.13.0 && pip install "transformers<5" FlagEmbedding "setuptools<81"
    pip install --no-deps -e . && pip install pytest && pytest tests/test_parity_flagembedding.py

Everywhere else it is skipped with that reason; the golden-value test and the per-text
reference in test_encoder.py always run.
"""

from __future__ import annotations

import numpy as np
import pytest
from sample_texts import SAMPLE_TEXTS, TEST_MAX_LENGTH

flag = pytest.importorskip(
    "FlagEmbedding", reason="FlagEmbedding is not installed (reference parity check skipped)"
)

pytestmark = pytest.mark.parity
ATOL = 1e-5


@pytest.fixture(scope="module")
def reference_model(tiny_model_dir):
    return flag.BGEM3FlagModel(str(tiny_model_dir), use_fp16=False, devices="cpu")


@pytest.mark.parametrize("max_length", [TEST_MAX_LENGTH, 8192])
def test_every_output_equals_flagembedding(tiny_encoder, reference_model, max_length):
    ref = reference_model.encode(
        SAMPLE_TEXTS,
        batch_size=4,
        max_length=max_length,
        return_dense=True,
        return_sparse=True,
        return_colbert_vecs=True,
    )
    ours = tiny_encoder.encode(SAMPLE_TEXTS, max_length=max_length)
    worst = {"dense": 0.0, "sparse": 0.0, "colbert": 0.0}
    for i, emb in enumerate(ours):
        dense_diff = float(np.abs(emb.dense - ref["dense_vecs"][i]).max())
        ref_sparse = {int(k): float(v) for k, v in ref["lexical_weights"][i].items()}
        assert set(emb.sparse) == set(ref_sparse), SAMPLE_TEXTS[i]
        sparse_diff = max((abs(emb.sparse[k] - v) for k, v in ref_sparse.items()), default=0.0)
        ref_colbert = np.asarray(ref["colbert_vecs"][i])
        assert emb.colbert.shape == ref_colbert.shape, SAMPLE_TEXTS[i]
        colbert_diff = float(np.abs(emb.colbert - ref_colbert).max())
        for key, diff in (
            ("dense", dense_diff),
            ("sparse", sparse_diff),
            ("colbert", colbert_diff),
        ):
            worst[key] = max(worst[key], diff)
    print(f"max |ours - FlagEmbedding| at max_length={max_length}: {worst}")
    assert max(worst.values()) <= ATOL, worst


def test_scores_equal_flagembedding(tiny_encoder, reference_model):
    from m3vdb.encoder import colbert_score, sparse_score

    texts = SAMPLE_TEXTS[:6]
    ref = reference_model.encode(
        texts, return_dense=True, return_sparse=True, return_colbert_vecs=True
    )
    ours = tiny_encoder.encode(texts)
    for i in range(len(texts)):
        for j in range(len(texts)):
            want_sparse = reference_model.compute_lexical_matching_score(
                ref["lexical_weights"][i], ref["lexical_weights"][j]
            )
            assert sparse_score(ours[i], ours[j]) == pytest.approx(float(want_sparse), abs=ATOL)
            want_colbert = reference_model.colbert_score(
                ref["colbert_vecs"][i], ref["colbert_vecs"][j]
            )
            assert colbert_score(ours[i], ours[j]) == pytest.approx(float(want_colbert), abs=ATOL)
