"""Exporting a BGE-M3 checkpoint to an ONNX folder that ``M3Encoder(folder)`` runs on ONNX
Runtime (``encoder/onnx_runtime.py``).

The folder holds:

- ``model.onnx``: the whole encoder, backbone and both heads, one graph with inputs
  ``input_ids`` and ``attention_mask`` (int64, ``(batch, length)``, both dynamic) and three
  outputs: ``dense`` ``(batch, hidden)`` (the CLS state, L2-normalised), ``sparse``
  ``(batch, length)`` (``relu(sparse_linear(h))`` per token) and ``colbert``
  ``(batch, length - 1, colbert_dim)`` (``colbert_linear(h[:, 1:])``, each row L2-normalised).
  Padding rows are dropped by the runtime, which knows each text's length.
- the checkpoint's tokenizer files (``tokenizer.json`` and its companions) and its
  ``config.json``, copied;
- ``m3vdb_onnx.json``: the manifest (format, precision, sizes, source) that marks the folder.

The graph is traced from transformers' "eager" attention with torch's TorchScript exporter
(``dynamo=False``: about 1 s against 9 s for the ``torch.export`` one, and it keeps module names
on the nodes, which is how the heads are told apart from the backbone), then fused by ONNX
Runtime's transformer optimizer: one ``Attention`` node per layer (ONNX Runtime's own kernel,
which takes each text's length instead of a 4-D mask), ``SkipLayerNormalization`` and
``BiasGelu``. The SDPA trace is not recognised by the optimizer; the eager one is. Fused, the
folder runs at 1.0x the torch float32 encoder where the unfused graph ran at 0.8x (small
checkpoint, mixed lengths, ``bench/README.md``); the fused nodes are ONNX Runtime's, so the
folder is for ONNX Runtime.

``int8=True`` then quantises the backbone's MatMul and Attention weights with ONNX Runtime's
dynamic quantisation, per output channel (int8 weights, uint8 activations with a zero point,
quantised per call); the two heads stay float32, as in the torch int8 path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from m3vdb.encoder.checkpoint import load_checkpoint
from m3vdb.errors import InputError
from m3vdb.schemas.optional import import_optional

MANIFEST = "m3vdb_onnx.json"
MODEL_FILE = "model.onnx"
FORMAT = 1
# what the tokenizer loader reads, copied when present (config.json: the CLI reads the model's
# dimensions from it)
TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
)
_HEADS = ("colbert_linear", "sparse_linear")

log = logging.getLogger(__name__)


class _EncoderGraph(torch.nn.Module):
    """The padded forward and both heads, as the exported graph computes them."""

    def __init__(
        self, backbone: torch.nn.Module, colbert: torch.nn.Linear, sparse: torch.nn.Linear
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.colbert_linear = colbert
        self.sparse_linear = sparse

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        dense = torch.nn.functional.normalize(hidden[:, 0], dim=-1)
        sparse = torch.relu(self.sparse_linear(hidden)).squeeze(-1)
        colbert = torch.nn.functional.normalize(self.colbert_linear(hidden[:, 1:]), dim=-1)
        return dense, sparse, colbert


def _onnxruntime_module(name: str) -> Any:
    return import_optional(
        f"onnxruntime.{name}", package="onnxruntime", extra="onnx", purpose="ONNX export"
    )


def _fuse(source: Path, target: Path, *, heads: int, hidden: int, layers: int) -> None:
    """Writes ``source`` fused by ONNX Runtime's transformer optimizer (BERT patterns) to
    ``target``; a graph whose attention it does not recognise is still written, unfused there,
    with a warning: it is right, only slower."""
    optimizer = _onnxruntime_module("transformers.optimizer")
    # opt_level 0: pattern fusion only. The session applies ONNX Runtime's hardware-specific
    # graph optimisations when it loads the folder, on the machine that runs it.
    fused = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
    )
    attention = fused.get_fused_operator_statistics().get("Attention", 0)
    if attention != layers:
        log.warning(
            "ONNX export: ONNX Runtime fused the attention of %d of %d layers; the others run "
            "unfused (right, slower)",
            attention,
            layers,
        )
    fused.save_model_to_file(str(target))


def export_onnx(
    model: str | os.PathLike[str], out: str | os.PathLike[str], *, int8: bool = False
) -> Path:
    """Exports the checkpoint ``model`` to the ONNX folder ``out`` (created; it must be empty
    or absent).

    Args:
        model: a checkpoint directory or hub id, as ``M3Encoder`` takes.
        out: the folder to write.
        int8: quantise the backbone's weights (per output channel, dynamic activations).

    Returns:
        ``out`` as a Path.

    Raises:
        InputError: ``out`` exists and is not an empty directory.
        MissingDependencyError: ``onnx`` (or ``onnxruntime`` for int8) is not installed.
    """
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(
            f"{target} already exists and is not an empty folder; pass a new folder to export to"
        )
    onnx = import_optional("onnx", package="onnx", extra="onnx", purpose="ONNX export")
    quantization = _onnxruntime_module("quantization") if int8 else None
    checkpoint = load_checkpoint(model, dtype=torch.float32, attention="eager")
    backbone: Any = checkpoint.backbone  # transformers' model: its config is untyped here
    config = backbone.config
    graph = _EncoderGraph(
        checkpoint.backbone, checkpoint.colbert_linear, checkpoint.sparse_linear
    ).eval()
    target.mkdir(parents=True, exist_ok=True)
    # two texts of different lengths: the trace sees padding (a mask with zeros)
    ids = torch.full((2, 8), int(config.pad_token_id), dtype=torch.int64)
    ids[:, 1:7] = torch.arange(5, 11)
    ids[:, 0] = int(checkpoint.tokenizer.cls_token_id)  # type: ignore[attr-defined]
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    axes = {
        "input_ids": {0: "batch", 1: "length"},
        "attention_mask": {0: "batch", 1: "length"},
        "dense": {0: "batch"},
        "sparse": {0: "batch", 1: "length"},
        "colbert": {0: "batch", 1: "rows"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        traced = Path(tmp) / "traced.onnx"
        fused = Path(tmp) / MODEL_FILE if int8 else target / MODEL_FILE
        with warnings.catch_warnings(), torch.inference_mode():
            # the tracer's notes on transformers' mask code: the shapes stay dynamic (tested)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (ids, mask),
                str(traced),
                input_names=["input_ids", "attention_mask"],
                output_names=["dense", "sparse", "colbert"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        _fuse(
            traced,
            fused,
            heads=int(config.num_attention_heads),
            hidden=int(config.hidden_size),
            layers=int(config.num_hidden_layers),
        )
        if quantization is not None:
            heads = [
                node.name
                for node in onnx.load(str(fused)).graph.node
                if node.name.startswith(tuple(f"/{head}/" for head in _HEADS))
            ]
            quantization.quantize_dynamic(
                str(fused),
                str(target / MODEL_FILE),
                per_channel=True,
                # 7-bit weights: CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply u8 x s8
                # pairs into int16 with saturation; 8-bit weights overflowed there (dense cosine
                # 0.9969 on an AVX2-only EPYC) and the export must be right on any CPU that
                # loads it (ONNX Runtime's own advice for such CPUs)
                reduce_range=True,
                weight_type=quantization.QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Attention"],
                nodes_to_exclude=heads,
                # the fused nodes are ONNX Runtime's own ops, which ONNX's shape inference
                # does not type: their tensors are float32
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    for name in TOKENIZER_FILES:
        if (checkpoint.path / name).is_file():
            shutil.copy2(checkpoint.path / name, target / name)
    manifest = {
        "format": FORMAT,
        "precision": "int8" if int8 else "float32",
        "source": str(model),
        "hidden_size": int(checkpoint.colbert_linear.in_features),
        "colbert_dim": int(checkpoint.colbert_linear.out_features),
        "max_positions": checkpoint.max_positions,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target
