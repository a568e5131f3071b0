"""BGE-M3's XLM-RoBERTa layer stack on packed sequences: the tokens of every text of a batch
concatenated into one ``(tokens, hidden)`` matrix, with no padding.

Why not the transformers forward on a padded batch: every projection and the feed-forward
then run on padding slots too, and a mixed batch needs a 4-D attention mask, which keeps
SDPA off its fused kernels. Packed, the projections and the feed-forward run once per layer
over the real tokens of the whole batch (one large matrix multiply), and attention runs per
run of equal-length texts without a mask (SDPA's flash kernel), or on CUDA in half precision
as one variable-length flash-attention call (``torch.nn.attention.varlen``).

The layers are the loaded transformers model's own modules (its embeddings, Linear and
LayerNorm layers, or the int8 layers that replace them), applied in transformers' order, so
float32 results equal transformers' to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from m3vdb.errors import CheckpointError

# The checkpoint's module names (stable: they are the weights' names in every BGE-M3 file).
_QKV = ("attention.self.query", "attention.self.key", "attention.self.value")
_LAYER_MODULES = (
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
)


@dataclass(frozen=True)
class Packing:
    """Where each text's tokens sit in the packed matrix.

    Attributes:
        lengths: tokens of each text, in packed order.
        starts: row of each text's first (CLS) token.
        runs: ``(first row, texts, length)`` per run of consecutive equal-length texts: the
            unit attention runs on without padding.
    """

    lengths: tuple[int, ...]
    starts: tuple[int, ...]
    runs: tuple[tuple[int, int, int], ...]

    @property
    def total(self) -> int:
        """Rows of the packed matrix."""
        return self.starts[-1] + self.lengths[-1] if self.lengths else 0

    @classmethod
    def of(cls, lengths: Sequence[int]) -> Packing:
        """The packing of texts of ``lengths`` tokens, in that order."""
        starts: list[int] = []
        runs: list[tuple[int, int, int]] = []
        row = 0
        for length in lengths:
            starts.append(row)
            if runs and runs[-1][2] == length:
                first, count, _ = runs[-1]
                runs[-1] = (first, count + 1, length)
            else:
                runs.append((row, 1, length))
            row += length
        return cls(tuple(lengths), tuple(starts), tuple(runs))


def _varlen_attention() -> Any:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch < 2.10
        return None
    return varlen_attn


def _fuse_qkv(attention: Any) -> None:
    """Replaces ``attention``'s query, key and value Linear layers (in place) by one, ``qkv``,
    whose output is their three outputs side by side: one matrix multiply instead of three
    (and, for int8, one quantisation of the input instead of three)."""
    if hasattr(attention, "qkv"):
        return
    parts = [attention.get_submodule(name.rpartition(".")[2]) for name in _QKV]
    fused = torch.nn.Linear(
        parts[0].in_features,
        sum(p.out_features for p in parts),
        device=parts[0].weight.device,
        dtype=parts[0].weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in parts]))
        fused.bias.copy_(torch.cat([p.bias for p in parts]))
    for name in _QKV:
        delattr(attention, name.rpartition(".")[2])
    attention.qkv = fused


class PackedEncoder:
    """Runs a loaded XLM-RoBERTa backbone (``transformers`` ``XLMRobertaModel``) on packed
    token sequences.

    It takes the backbone over: each layer's query, key and value projections are fused into
    one Linear (``attention.self.qkv``) in place, so the transformers forward of that module
    no longer runs; convert Linear layers (int8) after this.

    Args:
        backbone: the loaded model (eval mode, on its device, in its dtype).
        use_varlen: run attention as one variable-length flash-attention call; default: on
            CUDA in float16/bfloat16 where torch has ``torch.nn.attention.varlen``.
        varlen_attention: the variable-length attention function (``varlen_attn``'s
            signature); default: ``torch.nn.attention.varlen.varlen_attn``.
        quantized_activations: the Linear layers are int8 ones whose activations flow in
            float32 (sizes the feed-forward's row blocks).

    Raises:
        CheckpointError: the backbone is not shaped like XLM-RoBERTa (BGE-M3's).
    """

    def __init__(
        self,
        backbone: torch.nn.Module,
        *,
        use_varlen: bool | None = None,
        varlen_attention: Callable[..., torch.Tensor] | None = None,
        quantized_activations: bool = False,
    ) -> None:
        # transformers' modules are reached by their checkpoint names: typed Any
        model: Any = backbone
        config = model.config
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(
                "m3vdb runs XLM-RoBERTa backbones with absolute positions (BGE-M3's); this "
                f"checkpoint has position_embedding_type={config.position_embedding_type!r}"
            )
        try:
            self._embeddings: Any = model.get_submodule("embeddings")
            self._layers: list[Any] = list(model.get_submodule("encoder.layer"))
            for layer in self._layers:
                for name in _LAYER_MODULES:
                    layer.get_submodule(name)
                _fuse_qkv(layer.get_submodule("attention.self"))
            self._activation = self._layers[0].get_submodule("intermediate").intermediate_act_fn
        except AttributeError as exc:
            raise CheckpointError(
                f"m3vdb runs XLM-RoBERTa backbones (BGE-M3's); this one lacks {exc}"
            ) from exc
        self.heads = int(config.num_attention_heads)
        self.hidden = int(config.hidden_size)
        # XLM-R numbers positions from padding_idx + 1
        self.position_offset = int(self._embeddings.padding_idx) + 1
        weight = self._embeddings.word_embeddings.weight
        self.device = weight.device
        self.dtype = weight.dtype
        if use_varlen is None:
            use_varlen = self.device.type == "cuda" and self.dtype in (
                torch.float16,
                torch.bfloat16,
            )
        self._varlen: Any = (varlen_attention or _varlen_attention()) if use_varlen else None
        # The feed-forward is row-wise: on the CPU it runs on row blocks whose (rows x
        # intermediate) activation stays under 16 MiB. Larger buffers are fresh mmap'd pages
        # (glibc's threshold tops out at 32 MiB) whose page faults cost as much as the GEMM: a
        # gelu over 2048 x 4096 fp32 took 12 ms, an in-place pass 1.2 ms (bench/README.md).
        intermediate = int(config.intermediate_size)
        activation_bytes = 4 if quantized_activations else self.dtype.itemsize
        self._ffn_rows: int = (
            max(256, (16 << 20) // (intermediate * activation_bytes))
            if self.device.type == "cpu"
            else 1 << 62
        )

    def __call__(self, input_ids: torch.Tensor, packing: Packing) -> torch.Tensor:
        """The last hidden state of every token: ``(packing.total, hidden)``.

        Args:
            input_ids: the texts' token ids concatenated, ``(packing.total,)``, on the
                backbone's device.
            packing: where each text sits.
        """
        x = self._embed(input_ids, packing)
        cu_seqlens = None
        if self._varlen is not None:
            cu_seqlens = torch.tensor(
                [*packing.starts, packing.total], dtype=torch.int32, device=self.device
            )
        for layer in self._layers:
            x = self._layer(layer, x, packing, cu_seqlens)
        return x

    def _embed(self, input_ids: torch.Tensor, packing: Packing) -> torch.Tensor:
        emb = self._embeddings
        starts = torch.tensor(packing.starts, device=self.device)
        lengths = torch.tensor(packing.lengths, device=self.device)
        within = torch.arange(packing.total, device=self.device) - torch.repeat_interleave(
            starts, lengths
        )
        positions = within + self.position_offset
        # token type 0 everywhere: BGE-M3 has a single type; added in transformers' order
        x = emb.word_embeddings(input_ids) + emb.token_type_embeddings.weight[0]
        x = x + emb.position_embeddings(positions)
        return emb.LayerNorm(x)

    def _layer(
        self,
        layer: Any,
        x: torch.Tensor,
        packing: Packing,
        cu_seqlens: torch.Tensor | None,
    ) -> torch.Tensor:
        attention = layer.attention
        context = self._attend(attention.self.qkv(x), packing, cu_seqlens)
        x = attention.output.LayerNorm(attention.output.dense(context) + x)
        return self._feed_forward_in_blocks(layer, x)

    def _feed_forward_in_blocks(self, layer: Any, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward on row blocks of at most ``_ffn_rows`` rows (it is row-wise)."""
        if x.shape[0] <= self._ffn_rows:
            return self._feed_forward(layer, x)
        out = torch.empty_like(x)
        for start in range(0, x.shape[0], self._ffn_rows):
            rows = slice(start, start + self._ffn_rows)
            out[rows] = self._feed_forward(layer, x[rows])
        return out

    def _feed_forward(self, layer: Any, x: torch.Tensor) -> torch.Tensor:
        inner = self._activation(layer.intermediate.dense(x))
        return layer.output.LayerNorm(layer.output.dense(inner) + x)

    def _attend(
        self,
        qkv: torch.Tensor,
        packing: Packing,
        cu_seqlens: torch.Tensor | None,
    ) -> torch.Tensor:
        tokens = qkv.shape[0]
        head_dim = self.hidden // self.heads
        if cu_seqlens is not None:  # given only when the varlen kernel is in use
            longest = max(packing.lengths)
            shaped = qkv.view(tokens, 3, self.heads, head_dim).unbind(1)
            out = self._varlen(*shaped, cu_seqlens, cu_seqlens, longest, longest)
            return out.reshape(tokens, self.hidden)
        context = torch.empty((tokens, self.hidden), dtype=qkv.dtype, device=qkv.device)
        for first, count, length in packing.runs:
            rows = slice(first, first + count * length)
            # (3, count, heads, length, head_dim) views of the run: no copy, no mask
            run = qkv[rows].view(count, length, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
            if self._contiguous_heads(run, length):
                run = run.contiguous()
            out = torch.nn.functional.scaled_dot_product_attention(run[0], run[1], run[2])
            context[rows] = out.transpose(1, 2).reshape(count * length, self.hidden)
        return context

    def _contiguous_heads(self, run: torch.Tensor, length: int) -> bool:
        """Whether to copy a run's heads contiguous before SDPA. torch's CPU float32 flash
        kernel reads head rows strided by the fused projection's width (3 x hidden) 10-15 %
        slower from 384 tokens on, more than the copy costs, and faster below; bfloat16 runs
        the same either way (bench/README.md, "Long documents")."""
        return run.device.type == "cpu" and run.dtype == torch.float32 and length >= 384
