"""The encoder's direct ``tokenizers`` path gives transformers' ids exactly: special tokens,
truncation at every length around a text's own, whitespace-only text, tabs and newlines.
If this fails on a new tokenizers or transformers version, ``M3Encoder.tokenize`` can fall
back to transformers' call (``TokenIds.of`` returning None) until the cause is found."""

from __future__ import annotations

import pytest
from sample_texts import SAMPLE_TEXTS

from m3vdb.encoder.token_ids import TokenIds

EDGE_TEXTS = ["", " ", "\t\n", "a", "  two  spaces\tand a tab\nnewline  ", "word " * 300]


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder):
    return tiny_encoder.tokenizer


@pytest.mark.parametrize("max_length", [None, 2, 3, 5, 17, 64, 8192])
def test_ids_equal_transformers(tokenizer, max_length):
    fast = TokenIds.of(tokenizer)
    assert fast is not None
    texts = [*SAMPLE_TEXTS, *EDGE_TEXTS]
    want = tokenizer(
        texts,
        truncation=max_length is not None,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]
    assert fast(texts, max_length) == want


def test_the_encoder_uses_it(tiny_encoder):
    assert tiny_encoder._token_ids is not None
    assert tiny_encoder.tokenize(["word " * 300], max_length=9)[0][-1] == tiny_encoder._eos_id
