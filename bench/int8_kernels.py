"""The int8 kernels ``M3Encoder(dtype="int8")`` chooses between, timed on one Linear layer
against float32 on this CPU: what ``m3vdb.encoder.int8.choose_int8_kernel`` measures at load,
at a size where the differences are plain (the issue's 512 x 768 @ 768 x 768 by default).

    python bench/int8_kernels.py                       # every kernel, s8 included (slow!)
    python bench/int8_kernels.py --rows 1024 --in 1024 --out 3072 --skip onednn-s8

oneDNN's signed-int8 kernel runs a reference path on VNNI CPUs without AMX (seconds per call):
it is timed once, after one warm-up call, unless skipped.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from m3vdb.encoder.int8 import Int8Linear, available_kernels, choose_int8_kernel


def cpu_flags() -> str:
    """The CPU's SIMD and matrix flags that decide the kernels' speed."""
    names = ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next(
        (line.split(":")[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return " ".join(f"{n}={'yes' if n in flags else 'no'}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--in", dest="inputs", type=int, default=768)
    parser.add_argument("--out", type=int, default=768)
    parser.add_argument("--skip", nargs="*", default=[], help="kernels not to time")
    args = parser.parse_args()
    print(
        f"{cpu_flags()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"load average {os.getloadavg()}"
    )
    torch.manual_seed(0)
    layer = torch.nn.Linear(args.inputs, args.out).eval()
    x = torch.randn(args.rows, args.inputs)
    flops = 2 * args.rows * args.inputs * args.out
    with torch.inference_mode():
        for name in ["float32", *available_kernels()]:
            if name in args.skip:
                continue
            run = layer if name == "float32" else Int8Linear(layer, kernel=name)
            run(x)
            best = float("inf")
            for _ in range(1 if name == "onednn-s8" else 5):
                start = time.perf_counter()
                run(x)
                best = min(best, time.perf_counter() - start)
            print(f"{name:10s} {1000 * best:10.2f} ms  {flops / best / 1e9:8.1f} GOP/s")
        choice = choose_int8_kernel([layer], rows=min(args.rows, 256))
    print(f"chosen at load (on this shape, {min(args.rows, 256)} rows): {choice.describe()}")


if __name__ == "__main__":
    main()
