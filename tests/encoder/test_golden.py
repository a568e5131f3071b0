"""The tiny checkpoint's outputs equal the committed golden values: a change of tokenizer
handling, inference rules or checkpoint factory shows here on every run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden_values import GOLDEN_FILE, GOLDEN_TEXTS, compute


def test_outputs_equal_golden_values(tiny_encoder):
    golden = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    assert [g["text"] for g in golden] == GOLDEN_TEXTS
    for got, want in zip(compute(tiny_encoder), golden):
        assert got["input_ids"] == want["input_ids"], want["text"]
        np.testing.assert_allclose(got["dense"], want["dense"], atol=2e-5)
        assert got["sparse"].keys() == want["sparse"].keys(), want["text"]
        for token, weight in want["sparse"].items():
            assert got["sparse"][token] == pytest.approx(weight, abs=2e-5)
        np.testing.assert_allclose(np.array(got["colbert"]), np.array(want["colbert"]), atol=2e-5)
