"""Builds a BGE-M3-shaped checkpoint offline: no hub, no download.

The layout is the real one (a transformers XLM-RoBERTa directory with ``tokenizer.json``,
``colbert_linear.pt`` and ``sparse_linear.pt``) so the encoder loads it through the same
code path as ``BAAI/bge-m3``. The tokenizer is a ``tokenizers`` Unigram model built
on ``tests/data/multilingual.txt`` with XLM-R's special tokens, normaliser and
pre-tokeniser structure; its vocabulary is counted deterministically from the text (see
``_unigram_vocab``). Weights are random but deterministic: each tensor is drawn from a
generator seeded by its name, independent of transformers' own initialisation code, so the
golden outputs hold across transformers versions.

Usage as a script (for the README, the CLI and the benchmarks)::

    python tests/checkpoint_factory.py OUT_DIR            # tiny: hidden 32, 2 layers
    python tests/checkpoint_factory.py OUT_DIR --full     # real BGE-M3 architecture
"""

from __future__ import annotations

import argparse
import json
import os
import zlib
from pathlib import Path

import numpy as np

from m3vdb.encoder.checkpoint import XLMR_SPECIAL_TOKENS

CORPUS = Path(__file__).parent / "data" / "multilingual.txt"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as in XLM-R; <mask> is last


def _unigram_vocab(words: list[str], vocab_size: int) -> list[tuple[str, float]]:
    """Pieces and log-probability scores counted from ``words`` (pre-tokenised, with the
    metaspace marker): characters seen twice or more, then the most frequent 2- to 6-character
    substrings and whole words. Ties are broken by the piece itself, so the vocabulary is the
    same on every run (the ``tokenizers`` trainers order equal counts by hash-map iteration,
    which changes from run to run and would break golden values)."""
    counts: dict[str, int] = {}
    chars: dict[str, int] = {}
    for word in words:
        for ch in word:
            chars[ch] = chars.get(ch, 0) + 1
        for size in range(2, 7):
            for start in range(len(word) - size + 1):
                piece = word[start : start + size]
                counts[piece] = counts.get(piece, 0) + 1
    # rarer characters (some CJK, Thai, emoji) stay unknown, as rare ones do in real use
    alphabet = sorted((c for c, n in chars.items() if n >= 2), key=lambda c: (-chars[c], c))
    room = vocab_size - len(SPECIAL_TOKENS) - 1 - len(alphabet)
    frequent = [p for p, n in counts.items() if n >= 3]
    pieces = sorted(frequent, key=lambda p: (-counts[p] * len(p), p))[: max(room, 0)]
    total = float(sum(chars.values()))
    vocab = [(c, float(np.log(chars[c] / total))) for c in alphabet]
    # longer pieces score above their characters' product so Viterbi prefers them
    vocab += [(p, float(np.log(counts[p] / total)) + 0.5 * len(p)) for p in pieces]
    return vocab


def build_tokenizer(vocab_size: int) -> object:
    """A tokenizer shaped like XLM-R's tokenizer.json (Unigram model, NFKC + whitespace
    normaliser, whitespace split + metaspace pre-tokeniser, ``<s> $A </s>`` template), its
    vocabulary counted from the test corpus."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace(Regex(r"[\t\n\r]"), " "),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁")]
    )
    words = [
        word
        for line in CORPUS.read_text(encoding="utf-8").splitlines()
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))
    ]
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS]
    vocab += _unigram_vocab(words, vocab_size) + [("<mask>", 0.0)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=SPECIAL_TOKENS.index("<unk>")))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.Metaspace(replacement="▁")
    tokenizer.add_special_tokens(SPECIAL_TOKENS + ["<mask>"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return tokenizer


def _random_tensor(
    name: str, shape: tuple[int, ...], seed: int, weight_std: float = 0.1
) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()) + seed)
    if name.endswith("LayerNorm.weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith("bias"):
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return (weight_std * rng.standard_normal(shape)).astype(np.float32)


def build_checkpoint(
    out_dir: str | os.PathLike[str],
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 64,
    max_positions: int = 8192,
    tokenizer_vocab: int = 1000,
    model_vocab: int | None = None,
    seed: int = 0,
    weight_std: float = 0.1,
) -> Path:
    """Writes a BGE-M3-shaped checkpoint to ``out_dir`` and returns its path.

    ``model_vocab`` (default: the tokenizer's size) may be larger than the tokenizer's,
    e.g. 250002 to give the embedding matrix the real model's shape.

    ``weight_std`` is the spread of the random weight matrices. The default 0.1 (what the
    golden values were computed with) makes a deep, wide model collapse: at 24 x 1024 every
    token's hidden state is the same from layer 6 on, so precision comparisons on it mean
    little. 0.02 (BERT's own initialisation) keeps tokens apart through all 24 layers.
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(tokenizer_vocab)
    tokenizer.save(str(out / "tokenizer.json"))  # type: ignore[attr-defined]
    vocab = tokenizer.get_vocab_size()  # type: ignore[attr-defined]
    specials = dict(XLMR_SPECIAL_TOKENS)
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    # what AutoTokenizer (FlagEmbedding's loader) reads on transformers 4.x
    config_fields = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_positions}
    (out / "tokenizer_config.json").write_text(json.dumps({**config_fields, **specials}, indent=2))

    config = XLMRobertaConfig(
        vocab_size=model_vocab or vocab,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions + 2,  # XLM-R starts positions at pad_id + 1
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    model = XLMRobertaModel(config)  # with the pooler, as AutoModel builds it
    state = {
        name: torch.from_numpy(_random_tensor(name, tuple(t.shape), seed, weight_std))
        for name, t in model.state_dict().items()
        if t.is_floating_point()
    }
    model.load_state_dict(state, strict=False)
    model.save_pretrained(out)
    heads = {"colbert_linear": (hidden_size, hidden_size), "sparse_linear": (1, hidden_size)}
    for head, (rows, cols) in heads.items():
        torch.save(
            {
                "weight": torch.from_numpy(
                    _random_tensor(f"{head}.weight", (rows, cols), seed, weight_std)
                ),
                "bias": torch.from_numpy(_random_tensor(f"{head}.bias", (rows,), seed)),
            },
            out / f"{head}.pt",
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Build a BGE-M3-shaped checkpoint offline.")
    parser.add_argument("out_dir")
    parser.add_argument(
        "--full",
        action="store_true",
        help="the real BGE-M3 architecture (24 layers x 1024, 16 heads, vocab 250002; 2.3 GB)",
    )
    parser.add_argument(
        "--weight-std",
        type=float,
        default=0.1,
        help="spread of the random weights (0.02 keeps a 24-layer model from collapsing)",
    )
    args = parser.parse_args()
    if args.full:
        path = build_checkpoint(
            args.out_dir,
            hidden_size=1024,
            num_layers=24,
            num_heads=16,
            intermediate_size=4096,
            model_vocab=250002,
            weight_std=args.weight_std,
        )
    else:
        path = build_checkpoint(args.out_dir, weight_std=args.weight_std)
    print(path)


if __name__ == "__main__":
    main()
