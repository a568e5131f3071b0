"""Plots encoder throughput by input length, one line per row (our float32, bfloat16 and int8,
FlagEmbedding), from the JSON that ``bench/encoder.py --suite lengths --json FILE`` writes.
Needs matplotlib (not a project dependency: install it in the benchmark's virtualenv).

    python bench/plot.py bench/results/full-lengths.json bench/throughput_by_length.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("results", help="JSON written by bench/encoder.py --suite lengths")
    parser.add_argument("out", help="PNG to write")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    data = json.loads(Path(args.results).read_text())
    lengths = data["lengths"]
    keys = sorted((k for k in lengths if k.isdigit()), key=int)
    x = [int(k) for k in keys]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    labels = {
        "float32": "m3vdb float32",
        "bfloat16": "m3vdb bfloat16",
        "int8": "m3vdb int8",
        "flag": f"FlagEmbedding fp32 (batch_size {lengths['flag_batch_size']})",
    }
    labels = {impl: label for impl, label in labels.items() if impl in lengths[keys[0]]}
    for impl, label in labels.items():
        tps = [lengths[k][impl]["tokens_per_s"] for k in keys]
        med = [t["median"] for t in tps]
        err = [[m - t["min"] for m, t in zip(med, tps)], [t["max"] - m for m, t in zip(med, tps)]]
        ax.errorbar(x, med, yerr=err, marker="o", capsize=3, label=label)
        # the fraction of the row's own dtype ceiling, under each point
        for xi, m, k in zip(x, med, keys):
            ax.annotate(f"{100 * lengths[k][impl]['mfu']:.0f}%", (xi, m),
                        textcoords="offset points", xytext=(8, -4), fontsize=6)  # fmt: skip
    config = data["config"]
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(v) for v in x])
    ax.set_xlabel("tokens per text (special tokens included)")
    ax.set_ylabel("real tokens / s (median, min-max bars)")
    ax.set_yscale("log")
    ax.set_title(
        f"BGE-M3 encode ({lengths['outputs']} outputs) by dtype, CPU, "
        f"{config['num_hidden_layers']}x{config['hidden_size']} random weights\n"
        "(% = fraction of the row's own dtype matmul ceiling)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
