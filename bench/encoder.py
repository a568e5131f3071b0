"""Encoder throughput: m3vdb's ``M3Encoder`` against FlagEmbedding's ``BGEM3FlagModel`` on
the SAME checkpoint and the SAME corpus, in one run, alternating, several repetitions.

Each measurement runs in a fresh subprocess (model loaded and warmed up first, not timed) so
peak memory is that run's own. Reported: median and spread of tokens/s (real, non-pad
tokens), texts/s, peak RSS, for dense only and for all three outputs, and the ratio of
medians. FlagEmbedding is optional: without it only our figures are printed.

    python bench/encoder.py --model PATH [--n-texts 64 --max-tokens 2048 --repeats 3]
    python bench/encoder.py --build full    # a random-weight checkpoint of the real size

See bench/README.md for the figures and the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file's name shadows the ``encoder`` package when its folder comes first on the path.
sys.path[:] = (
    [str(ROOT), str(ROOT / "tests")]
    + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    + [str(ROOT / "bench")]
)

ARCHS = {
    "tiny": {},
    "small": dict(hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1536),
    "full": dict(
        hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096, model_vocab=250002
    ),
}


def flops_per_token(hidden: int, layers: int, intermediate: int, seq: float) -> float:
    """Forward FLOPs per token of an encoder layer stack: 2 x (4 h^2 attention projections +
    2 h i feed-forward) plus 2 x 2 h s for the attention scores and the weighted sum, per layer."""
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * hidden * seq)


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads) if args.threads else None
    texts = json.loads(Path(args.corpus).read_text(encoding="utf-8"))
    outputs = dict(dense=True, sparse=args.outputs == "all", colbert=args.outputs == "all")
    if args.impl == "ours":
        from encoder import M3Encoder

        model = M3Encoder(args.model, device="cpu", dtype="float32")

        def run(batch: list[str]) -> None:
            model.encode(batch, max_length=args.max_length, **outputs)

    else:
        from FlagEmbedding import BGEM3FlagModel

        model = BGEM3FlagModel(args.model, use_fp16=False, devices="cpu")

        def run(batch: list[str]) -> None:
            model.encode(
                batch,
                batch_size=args.flag_batch_size,
                max_length=args.max_length,
                return_dense=True,
                return_sparse=outputs["sparse"],
                return_colbert_vecs=outputs["colbert"],
            )

    run(texts[:4])  # warm-up: first-call allocations and kernel selection are not timed
    start = time.perf_counter()
    run(texts)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib}))


def _measure(impl: str, outputs: str, args: argparse.Namespace, corpus: Path) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", impl, "--outputs", outputs, "--model", str(args.model),
        "--corpus", str(corpus), "--max-length", str(args.max_length),
        "--flag-batch-size", str(args.flag_batch_size), "--threads", str(args.threads),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{impl} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _flag_available() -> bool:
    check = "import FlagEmbedding"
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint directory (default: build one with --build)")
    parser.add_argument("--build", choices=sorted(ARCHS), default="small")
    parser.add_argument("--n-texts", type=int, default=48)
    parser.add_argument("--min-tokens", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--outputs", choices=["dense", "all", "both"], default="both")
    parser.add_argument("--flag-batch-size", type=int, default=256, help="FlagEmbedding's default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", choices=["ours", "flag"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.impl = args.worker
        return _worker(args)

    from checkpoint_factory import build_checkpoint
    from corpus import make_corpus
    from encoder.checkpoint import load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            print(f"building a random-weight '{args.build}' checkpoint...", file=sys.stderr)
            args.model = build_checkpoint(Path(tmp) / "ckpt", **ARCHS[args.build])
        tokenizer = load_tokenizer(Path(args.model))
        texts = make_corpus(
            args.n_texts,
            lambda t: len(tokenizer(t)["input_ids"]),  # type: ignore[operator]
            min_tokens=args.min_tokens,
            max_tokens=args.max_tokens,
        )
        lengths = [min(len(ids), args.max_length) for ids in tokenizer(texts)["input_ids"]]  # type: ignore[operator]
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps(texts), encoding="utf-8")
        tokens = sum(lengths)
        config = json.loads((Path(args.model) / "config.json").read_text())
        print(
            f"corpus: {len(texts)} texts, {tokens} tokens, lengths {min(lengths)}..{max(lengths)} "
            f"(median {statistics.median(lengths):.0f}); model: {config['num_hidden_layers']} "
            f"layers x {config['hidden_size']}"
        )
        impls = ["ours", "flag"] if _flag_available() else ["ours"]
        if impls == ["ours"]:
            print("FlagEmbedding is not installed: reference figures skipped")
        modes = ["dense", "all"] if args.outputs == "both" else [args.outputs]
        results: dict[str, dict[str, list[dict]]] = {m: {i: [] for i in impls} for m in modes}
        for repeat in range(args.repeats):
            for mode in modes:
                # alternate the order so drift of the machine hits both sides alike
                for impl in impls if repeat % 2 == 0 else impls[::-1]:
                    results[mode][impl].append(_measure(impl, mode, args, corpus))
        summary = {}
        mean_seq = sum(n * n for n in lengths) / tokens
        flops = flops_per_token(
            config["hidden_size"],
            config["num_hidden_layers"],
            config["intermediate_size"],
            mean_seq,
        )
        for mode in modes:
            row = {}
            for impl in impls:
                secs = [r["seconds"] for r in results[mode][impl]]
                tps = sorted(tokens / s for s in secs)
                row[impl] = {
                    "tokens_per_s_median": statistics.median(tps),
                    "tokens_per_s_min": tps[0],
                    "tokens_per_s_max": tps[-1],
                    "texts_per_s_median": len(texts) / statistics.median(secs),
                    "peak_rss_mib_median": statistics.median(
                        r["peak_rss_mib"] for r in results[mode][impl]
                    ),
                    "gflops_per_s_median": statistics.median(tps) * flops / 1e9,
                }
                print(
                    f"{mode:5s} {impl:4s}: {row[impl]['tokens_per_s_median']:9.0f} tok/s "
                    f"(min {tps[0]:.0f}, max {tps[-1]:.0f}), {row[impl]['texts_per_s_median']:.2f} "
                    f"texts/s, peak RSS {row[impl]['peak_rss_mib_median']:.0f} MiB, "
                    f"{row[impl]['gflops_per_s_median']:.1f} GFLOP/s"
                )
            if "flag" in row:
                ratio = row["ours"]["tokens_per_s_median"] / row["flag"]["tokens_per_s_median"]
                row["ratio_ours_over_flag"] = ratio
                print(f"{mode:5s} ratio ours / FlagEmbedding (median tok/s): {ratio:.2f}x")
            summary[mode] = row
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
