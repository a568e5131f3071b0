"""Loading a BGE-M3 checkpoint: the XLM-RoBERTa backbone, its tokenizer and the two heads.

A checkpoint is a transformers model directory (or a hub id, downloaded once into the hub
cache) holding ``tokenizer.json``, ``colbert_linear.pt`` (Linear hidden -> colbert_dim) and
``sparse_linear.pt`` (Linear hidden -> 1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from m3vdb.errors import CheckpointError

HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt")
# XLM-RoBERTa's special tokens, used when the checkpoint has no special_tokens_map.json.
XLMR_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}


@dataclass
class Checkpoint:
    """The loaded parts of a BGE-M3 checkpoint, on the CPU, in the dtype asked for (float32
    by default)."""

    path: Path
    tokenizer: object  # transformers.PreTrainedTokenizerFast
    backbone: torch.nn.Module
    colbert_linear: torch.nn.Linear
    sparse_linear: torch.nn.Linear
    max_positions: int  # longest input, special tokens included


def resolve_checkpoint_dir(model: str | os.PathLike[str]) -> Path:
    """A local directory as is; anything else is taken as a hub id and downloaded."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the checkpoint's directory or a hub id")
    name = str(model)
    # A hub id is "name" or "org/name": anything else is a local path that does not exist.
    if not isinstance(model, str) or name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise CheckpointError(
            f"model directory {name!r} does not exist; pass an existing checkpoint directory "
            "or a hub id such as 'BAAI/bge-m3'"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id=str(model),
                # only what this loader reads: no ONNX export, no other frameworks' weights
                ignore_patterns=["onnx/*", "*.onnx", "*.msgpack", "*.ot", "*.h5", "imgs/*"],
            )
        )
    except Exception as exc:  # the hub client raises many types; all mean "cannot get it"
        raise CheckpointError(
            f"cannot load model {str(model)!r}: it is not a local directory and downloading it "
            f"from the Hugging Face hub failed ({type(exc).__name__}: {exc}). Pass a local "
            "checkpoint directory, or check the id and your network / HF_HUB_OFFLINE setting."
        ) from exc


def load_tokenizer(path: Path) -> object:
    """The fast tokenizer built from the checkpoint's own ``tokenizer.json``.

    ``AutoTokenizer`` under transformers 5 rebuilds an XLM-R tokenizer from its vocabulary and
    drops the file's normalizer and pre-tokenizer, which changes the ids of whitespace-only
    text, tabs and newlines; loading the file itself gives the same ids on 4.x and 5.x.
    """
    from transformers import PreTrainedTokenizerFast

    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise CheckpointError(
            f"{tokenizer_file} is missing: a BGE-M3 checkpoint must ship its fast tokenizer file"
        )
    special = dict(XLMR_SPECIAL_TOKENS)
    special_map = path / "special_tokens_map.json"
    if special_map.is_file():
        for key, value in json.loads(special_map.read_text(encoding="utf-8")).items():
            if key in special:
                special[key] = value["content"] if isinstance(value, dict) else value
    # clean_up_tokenization_spaces only affects decoding (never used here); setting it
    # silences transformers 4.4x's FutureWarning about its default.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), clean_up_tokenization_spaces=False, **special
    )
    vocab = tokenizer.get_vocab()
    absent = sorted(token for token in set(special.values()) if token not in vocab)
    if absent:
        raise CheckpointError(f"{tokenizer_file} lacks the special tokens {absent}")
    return tokenizer


def _load_head(
    path: Path, name: str, in_features: int, out_features: int | None, dtype: torch.dtype
) -> torch.nn.Linear:
    file = path / name
    if not file.is_file():
        raise CheckpointError(
            f"{file} is missing: a BGE-M3 checkpoint holds {' and '.join(HEAD_FILES)} beside "
            "the transformers model files"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{file} cannot be read as a torch state dict: {exc}") from exc
    weight, bias = state.get("weight"), state.get("bias")
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise CheckpointError(
            f"{file} must hold a Linear layer's 'weight' and 'bias', found {sorted(state)}"
        )
    expected_out = weight.shape[0] if out_features is None else out_features
    if weight.shape != (expected_out, in_features) or bias.shape != (expected_out,):
        raise CheckpointError(
            f"{file} holds weight {tuple(weight.shape)} and bias {tuple(bias.shape)}; expected "
            f"({expected_out}, {in_features}) and ({expected_out},) for hidden size {in_features}"
        )
    layer = torch.nn.Linear(in_features, expected_out, dtype=dtype)
    layer.load_state_dict({"weight": weight, "bias": bias})  # copied (and cast) into dtype
    return layer


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silences transformers' load report and progress bars: the pooler BGE-M3 does not use
    is skipped on purpose and would be reported as an unexpected key."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
_READ_CHUNK_BYTES = 16 << 20


def read_safetensors(file: Path, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a ``.safetensors`` file, cast to ``dtype``, one at a time.

    Reads with plain file reads in 16 MiB chunks straight into the cast tensor, instead of
    memory-mapping the file: the pages of a mapped file count in the process's resident
    memory while the mapping lives, so casting a 2.2 GB float32 file to bfloat16 through a
    mapping peaks at ~3.6 GB; this way it peaks at the bfloat16 tensors plus one chunk.

    Raises:
        CheckpointError: the file is not a safetensors file, or holds a dtype other than
            F32, F16 or BF16.
    """
    with open(file, "rb", buffering=0) as handle:
        try:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        except ValueError as exc:
            raise CheckpointError(f"{file} is not a safetensors file: {exc}") from exc
        base = 8 + size
        for name, info in header.items():
            if name == "__metadata__":
                continue
            source = _SAFETENSORS_DTYPES.get(info["dtype"])
            if source is None:
                raise CheckpointError(f"{file}: tensor {name} is {info['dtype']}, not a float")
            out = torch.empty(info["shape"], dtype=dtype)
            flat = out.view(-1)
            per_chunk = max(1, _READ_CHUNK_BYTES // source.itemsize)
            buffer = torch.empty(min(per_chunk, max(flat.numel(), 1)), dtype=source)
            handle.seek(base + info["data_offsets"][0])
            done = 0
            while done < flat.numel():
                count = min(per_chunk, flat.numel() - done)
                raw = buffer[:count].view(torch.uint8).numpy()
                filled = 0
                while filled < raw.nbytes:
                    got = handle.readinto(raw.data[filled:])
                    if not got:
                        raise CheckpointError(f"{file} is truncated (tensor {name})")
                    filled += got
                flat[done : done + count].copy_(buffer[:count])
                done += count
            yield name, out


def _set_tensor(module: torch.nn.Module, name: str, tensor: torch.Tensor) -> None:
    *path, leaf = name.split(".")
    owner = module.get_submodule(".".join(path))
    if leaf in owner._parameters:
        owner._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[leaf] = tensor


def _load_backbone_cast(
    path: Path, config: object, dtype: torch.dtype, options: dict[str, object]
) -> torch.nn.Module | None:
    """The backbone built empty (meta device) and filled tensor by tensor from
    ``model.safetensors`` in ``dtype``: peak memory = the model in ``dtype``. None where the
    checkpoint is not one safetensors file (sharded, or pytorch_model.bin): the caller then
    uses ``from_pretrained``."""
    from transformers import AutoModel

    file = path / "model.safetensors"
    if not file.is_file():
        return None
    try:
        with torch.device("meta"):
            backbone = AutoModel.from_config(config, **options)
    except ValueError:  # a transformers without SDPA for this architecture
        return None
    expected = dict(backbone.named_parameters())
    buffers = dict(backbone.named_buffers())
    loaded: set[str] = set()
    try:
        for name, tensor in read_safetensors(file, dtype):
            key = next(
                (k for k in (name, name.removeprefix("roberta.")) if k in expected or k in buffers),
                None,
            )
            if key is None:  # e.g. the pooler, which BGE-M3 does not use
                continue
            _set_tensor(backbone, key, tensor.to(buffers[key].dtype) if key in buffers else tensor)
            loaded.add(key)
    except CheckpointError:  # e.g. an integer tensor: transformers' own loader handles it
        return None
    missing = sorted(set(expected) - loaded)
    if missing:
        raise CheckpointError(f"{file} lacks the weights {missing[:5]} (of {len(missing)})")
    # non-persistent buffers (XLM-R: position_ids, token_type_ids) are not in the file
    for name, buffer in list(backbone.named_buffers()):
        if buffer.is_meta:
            if name.endswith("position_ids"):
                values = torch.arange(buffer.shape[-1]).expand(buffer.shape).clone()
            elif name.endswith("token_type_ids"):
                values = torch.zeros(buffer.shape, dtype=buffer.dtype)
            else:
                return None  # a buffer this loader does not know: let transformers build it
            _set_tensor(backbone, name, values.to(buffer.dtype))
    return backbone


def _dtype_argument(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained``'s dtype keyword: ``dtype`` from transformers 4.56, ``torch_dtype``
    before (an unknown keyword would be taken silently as a config attribute)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def load_checkpoint(
    model: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    attention: str = "sdpa",
) -> Checkpoint:
    """Loads tokenizer, backbone and heads of a BGE-M3 checkpoint (CPU, eval mode).

    Args:
        model: a checkpoint directory or a hub id.
        dtype: the dtype the weights are loaded in. Other than float32, a single-file
            safetensors checkpoint is read and cast tensor by tensor
            (:func:`read_safetensors`), so a bfloat16 load never holds a float32 copy of the
            model: its peak memory is about half a float32 load's.
        attention: transformers' attention implementation for the backbone's own forward
            ("sdpa"; the ONNX export traces "eager", whose graph ONNX Runtime fuses).
    """
    from transformers import AutoConfig, AutoModel

    path = resolve_checkpoint_dir(model)
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path / 'config.json'} is missing: not a transformers model directory"
        )
    tokenizer = load_tokenizer(path)
    config = AutoConfig.from_pretrained(path)
    try:
        with _quiet_transformers():
            # SDPA: the fused attention kernels on every device. The pooler is unused by
            # BGE-M3 (dense = CLS hidden state): not building it saves work.
            options = {"config": config, "add_pooling_layer": False, **_dtype_argument(dtype)}
            backbone = None
            if dtype != torch.float32:
                # float32 keeps transformers' loader: it maps the file and is the reference
                backbone = _load_backbone_cast(
                    path,
                    config,
                    dtype,
                    {"add_pooling_layer": False, "attn_implementation": attention},
                )
            if backbone is None:
                try:
                    backbone = AutoModel.from_pretrained(
                        path, attn_implementation=attention, **options
                    )
                except ValueError:  # a transformers without SDPA for this architecture
                    backbone = AutoModel.from_pretrained(path, **options)
    except OSError as exc:
        raise CheckpointError(f"cannot load the model weights in {path}: {exc}") from exc
    backbone.to(dtype).eval()  # a no-op where from_pretrained already gave that dtype
    hidden = int(config.hidden_size)
    colbert_linear = _load_head(path, "colbert_linear.pt", hidden, None, dtype)
    sparse_linear = _load_head(path, "sparse_linear.pt", hidden, 1, dtype)
    # XLM-R numbers positions from padding_idx + 1, so two positions are never used.
    offset = int(getattr(config, "pad_token_id", 1) or 0) + 1
    max_positions = int(config.max_position_embeddings) - offset
    return Checkpoint(
        path, tokenizer, backbone, colbert_linear.eval(), sparse_linear.eval(), max_positions
    )
