"""The packed forward (``encoder/packed.py``) against transformers' own forward on a padded
batch: same hidden states for every real token, whatever the mix of lengths, the
feed-forward's row blocks and the attention path."""

from __future__ import annotations

import pytest
import torch

from m3vdb.encoder.checkpoint import load_checkpoint
from m3vdb.encoder.packed import PackedEncoder, Packing

LENGTHS = [9, 2, 9, 9, 30, 4, 17, 400]


def test_packing_finds_each_text_and_the_runs_of_equal_lengths():
    packing = Packing.of([5, 5, 3, 5])
    assert packing.starts == (0, 5, 10, 13)
    assert packing.total == 18
    assert packing.runs == ((0, 2, 5), (10, 1, 3), (13, 1, 5))
    assert Packing.of([]).total == 0


@pytest.fixture
def backbone(tiny_model_dir):
    """A fresh backbone: the packed encoder fuses its Q/K/V layers in place."""
    return load_checkpoint(tiny_model_dir).backbone


@pytest.fixture(scope="module")
def texts():
    generator = torch.Generator().manual_seed(0)
    # ids >= 5 (past XLM-R's specials); CLS first, EOS last, as the tokenizer gives them
    return [[0, *torch.randint(5, 200, (n - 2,), generator=generator).tolist(), 2] for n in LENGTHS]


@pytest.fixture(scope="module")
def padded_reference(tiny_model_dir, texts):
    """transformers' forward: a padded batch with its attention mask."""
    backbone = load_checkpoint(tiny_model_dir).backbone
    longest = max(LENGTHS)
    ids = torch.full((len(texts), longest), backbone.config.pad_token_id)
    mask = torch.zeros((len(texts), longest), dtype=torch.long)
    for row, tokens in enumerate(texts):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    with torch.inference_mode():
        hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    return [hidden[row, :n] for row, n in enumerate(LENGTHS)]


def _packed(encoder: PackedEncoder, texts: list[list[int]]) -> list[torch.Tensor]:
    packing = Packing.of([len(t) for t in texts])
    ids = torch.tensor([token for text in texts for token in text])
    with torch.inference_mode():
        hidden = encoder(ids, packing)
    return [hidden[start : start + n] for start, n in zip(packing.starts, packing.lengths)]


@pytest.mark.parametrize("ffn_rows", [None, 7])
def test_packed_equals_transformers_padded_forward(backbone, texts, padded_reference, ffn_rows):
    encoder = PackedEncoder(backbone)
    if ffn_rows is not None:
        encoder._ffn_rows = ffn_rows  # row blocks that cut through texts
    for got, want in zip(_packed(encoder, texts), padded_reference):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("contiguous", [True, False])
def test_both_head_layouts_handed_to_sdpa_give_the_same_states(
    backbone, texts, padded_reference, contiguous
):
    """float32 runs of >= 384 tokens are copied head-contiguous before SDPA, shorter ones
    stay strided views: either layout, for every text, equals transformers."""
    encoder = PackedEncoder(backbone)
    encoder._contiguous_heads = lambda run, length: contiguous  # type: ignore[method-assign]
    for got, want in zip(_packed(encoder, texts), padded_reference):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def per_text_varlen_stand_in(q, k, v, cu_q, cu_k, max_q, max_k):
    """STAND-IN for ``torch.nn.attention.varlen.varlen_attn``, which needs CUDA: the same
    contract ((tokens, heads, dim) in and out, cumulative int32 offsets), computed per text
    with SDPA. Checks what the encoder hands to the CUDA kernel, not the kernel."""
    assert q.shape == k.shape == v.shape and q.dim() == 3
    assert cu_q.dtype == torch.int32 and torch.equal(cu_q, cu_k) and max_q == max_k
    assert int(cu_q[-1]) == q.shape[0] and max_q == int((cu_q[1:] - cu_q[:-1]).max())
    out = torch.empty_like(q)
    for start, end in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        heads = [t[start:end].transpose(0, 1) for t in (q, k, v)]
        out[start:end] = torch.nn.functional.scaled_dot_product_attention(*heads).transpose(0, 1)
    return out


def test_the_varlen_path_hands_the_kernel_the_packed_layout(backbone, texts, padded_reference):
    encoder = PackedEncoder(backbone, use_varlen=True, varlen_attention=per_text_varlen_stand_in)
    for got, want in zip(_packed(encoder, texts), padded_reference):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_varlen_is_off_on_the_cpu(backbone):
    assert PackedEncoder(backbone)._varlen is None


def test_qkv_are_fused_once_and_the_fused_layer_is_what_runs(backbone, texts, padded_reference):
    PackedEncoder(backbone)
    attention = backbone.encoder.layer[0].attention.self
    assert isinstance(attention.qkv, torch.nn.Linear) and attention.qkv.out_features == 3 * (
        backbone.config.hidden_size
    )
    assert not hasattr(attention, "query")
    again = PackedEncoder(backbone)  # an already fused backbone is taken as it is
    for got, want in zip(_packed(again, texts), padded_reference):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
