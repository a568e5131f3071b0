"""The encoder against a straightforward per-text reference (tests/reference_m3.py) on the
tiny checkpoint, plus its input handling, batching and windows."""

from __future__ import annotations

import numpy as np
import pytest
from reference_m3 import reference_encode
from sample_texts import SAMPLE_TEXTS, TEST_MAX_LENGTH

from m3vdb import InputError
from m3vdb.encoder import M3Embedding, M3Encoder
from m3vdb.encoder.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    checkpoint = load_checkpoint(tiny_model_dir)
    return [reference_encode(checkpoint, t, TEST_MAX_LENGTH) for t in SAMPLE_TEXTS]


def assert_same_embedding(ours: M3Embedding, ref: dict, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(ours.dense, ref["dense"], atol=atol)
    assert ours.sparse is not None and set(ours.sparse) == set(ref["sparse"])
    for token, weight in ref["sparse"].items():
        assert ours.sparse[token] == pytest.approx(weight, abs=atol)
    assert ours.colbert.shape == ref["colbert"].shape
    np.testing.assert_allclose(ours.colbert, ref["colbert"], atol=atol)


def test_outputs_equal_the_per_text_reference(tiny_encoder, reference):
    embs = tiny_encoder.encode(SAMPLE_TEXTS, max_length=TEST_MAX_LENGTH)
    assert len(embs) == len(SAMPLE_TEXTS)
    for emb, ref in zip(embs, reference):
        assert_same_embedding(emb, ref)


def test_shapes_norms_and_dtypes(tiny_encoder, reference):
    embs = tiny_encoder.encode(SAMPLE_TEXTS, max_length=TEST_MAX_LENGTH)
    for emb, ref in zip(embs, reference):
        assert emb.dense.dtype == np.float32 and emb.dense.shape == (tiny_encoder.dense_dim,)
        assert np.linalg.norm(emb.dense) == pytest.approx(1.0, abs=1e-5)
        n_tokens = len(ref["ids"])
        assert emb.colbert.dtype == np.float32
        assert emb.colbert.shape == (n_tokens - 1, tiny_encoder.colbert_dim)
        np.testing.assert_allclose(np.linalg.norm(emb.colbert, axis=1), 1.0, atol=1e-5)
        assert all(isinstance(k, int) and v > 0 for k, v in emb.sparse.items())
        specials = {0, 1, 2, 3}  # <s>, <pad>, </s>, <unk>
        assert not specials & set(emb.sparse)


def test_truncation_counts_special_tokens(tiny_encoder, reference):
    long_index = len(SAMPLE_TEXTS) - 1
    assert len(reference[long_index]["ids"]) == TEST_MAX_LENGTH
    emb = tiny_encoder.encode([SAMPLE_TEXTS[long_index]], max_length=TEST_MAX_LENGTH)[0]
    assert emb.colbert.shape[0] == TEST_MAX_LENGTH - 1


def test_empty_and_whitespace_texts_give_cls_eos_only(tiny_encoder):
    for emb in tiny_encoder.encode(["", "   ", "\t\n"]):
        assert emb.sparse == {}
        assert emb.colbert.shape == (1, tiny_encoder.colbert_dim)  # the EOS row


def test_batching_does_not_change_results(tiny_model_dir, tiny_encoder):
    texts = SAMPLE_TEXTS * 3
    wide = tiny_encoder.encode(texts, max_length=TEST_MAX_LENGTH)
    narrow = M3Encoder(tiny_model_dir, dtype="float32", token_budget=40, max_batch_size=3).encode(
        texts, max_length=TEST_MAX_LENGTH
    )
    for a, b in zip(wide, narrow):
        np.testing.assert_allclose(a.dense, b.dense, atol=1e-5)
        np.testing.assert_allclose(a.colbert, b.colbert, atol=1e-5)
        assert a.sparse.keys() == b.sparse.keys()


def test_order_is_input_order(tiny_encoder):
    texts = ["short", "a much longer text about rivers and valleys and the sea", "mid length text"]
    together = tiny_encoder.encode(texts)
    alone = [tiny_encoder.encode([t])[0] for t in texts]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.dense, b.dense, atol=1e-5)


def test_only_requested_outputs_are_computed(tiny_encoder):
    emb = tiny_encoder.encode(["river"], dense=True, sparse=False, colbert=False)[0]
    assert emb.dense is not None and emb.sparse is None and emb.colbert is None
    emb = tiny_encoder.encode(["river"], dense=False, sparse=True, colbert=False)[0]
    assert emb.dense is None and emb.sparse and emb.colbert is None
    with pytest.raises(InputError, match="at least one"):
        tiny_encoder.encode(["river"], dense=False, sparse=False, colbert=False)


def test_bad_input_is_refused_with_its_index(tiny_encoder):
    assert tiny_encoder.encode([]) == []
    with pytest.raises(TypeError, match=r"texts\[2\] is a int"):
        tiny_encoder.encode(["a", "b", 3])
    with pytest.raises(TypeError, match=r"texts\[0\] is a NoneType"):
        tiny_encoder.encode([None])
    with pytest.raises(TypeError, match="not a single string"):
        tiny_encoder.encode("a text")
    with pytest.raises(InputError, match="max_length=9000"):
        tiny_encoder.encode(["a"], max_length=9000)
    with pytest.raises(InputError, match="max_length=1"):
        tiny_encoder.encode(["a"], max_length=1)


def test_full_length_input_is_accepted(tiny_encoder):
    text = "river " * 9000
    emb = tiny_encoder.encode([text])[0]
    assert emb.colbert.shape[0] == tiny_encoder.max_length - 1 == 8191


def test_windows_cover_the_text_with_overlap(tiny_encoder):
    text = " ".join(f"word{i} river valley" for i in range(120))
    ids = tiny_encoder.tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = tiny_encoder.encode_windows([text, "short text"], window_tokens=64, overlap_tokens=16)
    first = [w for w in windows if w.text_index == 0]
    assert [w.token_start for w in first] == list(range(0, len(ids) - 16, 46))[: len(first)]
    assert first[-1].token_end == len(ids)
    for a, b in zip(first, first[1:]):
        assert a.token_end - b.token_start == 16
    for w in first:
        assert w.embedding.colbert.shape[0] == w.token_end - w.token_start + 1
        assert w.text == text[w.char_start : w.char_end]
    # a text that fits gives one window equal to encode()
    short = [w for w in windows if w.text_index == 1]
    assert len(short) == 1 and short[0].text == "short text"
    np.testing.assert_allclose(
        short[0].embedding.dense, tiny_encoder.encode(["short text"])[0].dense, atol=1e-5
    )


def test_window_arguments_are_checked(tiny_encoder):
    with pytest.raises(InputError, match="overlap_tokens"):
        tiny_encoder.encode_windows(["a"], window_tokens=10, overlap_tokens=8)
    with pytest.raises(InputError, match="window_tokens"):
        tiny_encoder.encode_windows(["a"], window_tokens=9000)
    empty = tiny_encoder.encode_windows([""], window_tokens=10, overlap_tokens=2)
    assert len(empty) == 1 and empty[0].token_end == 0 and empty[0].embedding.sparse == {}


@pytest.mark.parametrize("copies", [1, 3])  # 13 and 39 texts
def test_tokenize_gives_the_tokenizers_own_ids(tiny_encoder, copies):
    """``tokenize`` reads ids from a copy of the Rust tokenizer (half the cost per call):
    they equal transformers' call on every sample (empty, whitespace, NFKC, scripts, emoji),
    truncated at several lengths and untruncated."""
    texts = SAMPLE_TEXTS * copies
    assert tiny_encoder._token_ids is not None  # the fast path is the one under test
    for limit in (2, 3, TEST_MAX_LENGTH, tiny_encoder.max_length):
        want = tiny_encoder.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
        assert tiny_encoder.tokenize(texts, max_length=limit) == want
    want = tiny_encoder.tokenizer(texts, verbose=False)["input_ids"]
    assert tiny_encoder.tokenize(texts, truncate=False) == want
    assert max(len(x) for x in want) > TEST_MAX_LENGTH
