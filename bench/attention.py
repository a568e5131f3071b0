"""Attention on one long text: the CPU kernels torch offers, and where one encoder layer's time
goes. Backs the "Long documents" figures in bench/README.md (why 8k-token texts stay under the
dtype's GEMM ceiling).

Kernels (``--kernels``), each on ``(1, heads, length, head_dim)`` q/k/v:

- ``sdpa``: ``scaled_dot_product_attention`` on head-contiguous q/k/v (the CPU flash kernel);
- ``sdpa-strided``: the same on strided views of a fused ``(tokens, 3 x hidden)`` projection,
  the layout ``PackedEncoder`` has before its copy;
- ``flex``: ``flex_attention`` under ``torch.compile`` (inductor's C++ template; first call
  compiles, not timed);
- ``onednn-graph``: matmul-softmax-matmul traced with TorchScript's oneDNN graph fusion;
- ``blocked``: ``bmm`` + in-place softmax over blocks of 128 queries (torch ops only).

``--model DIR`` adds the parts of one layer of ``M3Encoder(DIR)`` (fused Q/K/V, attention,
output projection, feed-forward) on a random ``(length, hidden)`` input.

    python bench/attention.py --length 8192 --dtypes float32 bfloat16
    python bench/attention.py --length 8192 --model /work/bench-ckpt-full-scaled
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

F = torch.nn.functional


def median_seconds(step: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``step`` over ``repeats`` calls, after one untimed call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _blocked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = 128) -> torch.Tensor:
    q, k, v = (t[0] for t in (q, k, v))
    k_t = k.transpose(1, 2).contiguous()
    out = torch.empty_like(q)
    scores = torch.empty(q.shape[0], block, k.shape[1], dtype=q.dtype)
    for start in range(0, q.shape[1], block):
        rows = slice(start, start + block)
        queries = q[:, rows]
        s = torch.bmm(queries, k_t, out=scores[:, : queries.shape[1]])
        s.mul_(q.shape[-1] ** -0.5)
        s.sub_(s.amax(-1, keepdim=True)).exp_()
        s.div_(s.sum(-1, keepdim=True))
        torch.bmm(s, v, out=out[:, rows])
    return out[None]


def kernels(
    length: int, dtype: torch.dtype, heads: int, head_dim: int, names: list[str]
) -> dict[str, Callable[[], Any]]:
    """The attention calls to time, by name, on fresh random inputs."""
    hidden = heads * head_dim
    fused = torch.randn(length, 3 * hidden, dtype=dtype)
    strided = fused.view(1, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = strided.contiguous()
    steps: dict[str, Callable[[], Any]] = {}
    for name in names:
        if name == "sdpa":
            steps[name] = lambda: F.scaled_dot_product_attention(q, k, v)
        elif name == "sdpa-strided":
            steps[name] = lambda: F.scaled_dot_product_attention(*strided)
        elif name == "flex":
            from torch.nn.attention.flex_attention import flex_attention

            compiled = torch.compile(flex_attention)
            steps[name] = lambda compiled=compiled: compiled(q, k, v)
        elif name == "onednn-graph":
            torch.jit.enable_onednn_fusion(True)

            def math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                scores = torch.matmul(q, k.transpose(-1, -2)) / head_dim**0.5
                return torch.matmul(torch.softmax(scores, -1), v)

            traced = torch.jit.trace(math, (q, k, v))
            steps[name] = lambda traced=traced: traced(q, k, v)
        elif name == "blocked":
            steps[name] = lambda: _blocked(q, k, v)
        else:
            raise SystemExit(f"unknown kernel {name!r}")
    return steps


def layer_parts(model: str, length: int, dtype: str) -> dict[str, tuple[float, Callable[[], Any]]]:
    """(GFLOP, call) of each part of the first layer of ``M3Encoder(model, dtype=dtype)``."""
    from m3vdb.encoder.model import M3Encoder
    from m3vdb.encoder.packed import Packing

    packed = M3Encoder(model, dtype=dtype)._packed
    layer = packed._layers[0]
    hidden = packed.hidden
    intermediate = int(layer.intermediate.dense.out_features)
    x = torch.randn(length, hidden, dtype=packed.dtype)
    packing = Packing.of([length])
    qkv = layer.attention.self.qkv(x)
    context = packed._attend(qkv, packing, None)

    output = layer.attention.output
    fused_qkv = layer.attention.self.qkv
    return {
        "fused Q/K/V": (6 * length * hidden**2 / 1e9, lambda: fused_qkv(x)),
        "attention": (4 * length**2 * hidden / 1e9, lambda: packed._attend(qkv, packing, None)),
        "output + LayerNorm": (
            2 * length * hidden**2 / 1e9,
            lambda: output.LayerNorm(output.dense(context) + x),
        ),
        "feed-forward": (
            4 * length * hidden * intermediate / 1e9,
            lambda: packed._feed_forward_in_blocks(layer, x),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["sdpa", "sdpa-strided", "flex", "onednn-graph", "blocked"],
    )
    parser.add_argument("--model", help="also time the parts of this checkpoint's first layer")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    flops = 4 * args.length**2 * args.heads * args.head_dim / 1e9
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, length {args.length}")
    with torch.inference_mode():
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            steps = kernels(args.length, dtype, args.heads, args.head_dim, args.kernels)
            for name, step in steps.items():
                seconds = median_seconds(step, args.repeats)
                print(
                    f"{dtype_name:9s} {name:13s} {seconds * 1e3:9.1f} ms "
                    f"{flops / seconds:7.0f} GFLOP/s"
                )
            if args.model:
                for part, (gflop, step) in layer_parts(args.model, args.length, dtype_name).items():
                    seconds = median_seconds(step, args.repeats)
                    print(
                        f"{dtype_name:9s} layer: {part:18s} {gflop:6.1f} GFLOP "
                        f"{seconds * 1e3:8.1f} ms {gflop / seconds:7.0f} GFLOP/s"
                    )


if __name__ == "__main__":
    main()
