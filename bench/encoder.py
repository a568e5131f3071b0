"""Encoder throughput: m3vdb's ``M3Encoder`` against FlagEmbedding's ``BGEM3FlagModel`` on
the SAME checkpoint and the SAME corpus, in one run, alternating, several repetitions.

Two suites:

- ``mixed``: one corpus with lengths spread log-uniformly (``--min-tokens`` .. ``--max-tokens``,
  several languages). Each measurement runs in a fresh subprocess (model loaded and warmed up
  first, not timed) so peak memory is that run's own. Reported: median and spread of tokens/s
  (real, non-pad tokens), texts/s, peak RSS, for dense only and for all three outputs, the ratio
  of medians, and the largest difference between the two implementations' outputs.
- ``lengths``: per-length corpora (every text of one length, about ``--bucket-tokens`` tokens
  per length); one subprocess per implementation and repeat loads the model once and times
  every length. Feeds the throughput-by-length plot (``bench/plot.py``).

Both report the achieved GFLOP/s and its fraction of the machine's fp32 matrix-multiply
ceiling, measured in the same run (:func:`matmul_ceiling`). FlagEmbedding is optional: without
it only our figures are printed.

    python bench/encoder.py --model /work/bench-ckpt-full --suite mixed --json out.json
    python bench/encoder.py --build small            # a random-weight 6 x 384 checkpoint

See bench/README.md for the figures and the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# the tiny-checkpoint factory lives with the tests
sys.path.append(str(ROOT / "tests"))

ARCHS: dict[str, dict[str, int]] = {
    "tiny": {},
    "small": dict(hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1536),
    "full": dict(
        hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096, model_vocab=250002
    ),
}
LENGTHS = (16, 64, 256, 1024, 4096)


def flops_per_token(hidden: int, layers: int, intermediate: int, seq: float) -> float:
    """Forward FLOPs per real token of the encoder's layer stack (1 multiply-add = 2 FLOPs).

    Per layer and token: the Q, K, V and output projections are 4 h^2 multiply-adds, the
    feed-forward 2 h i, and attention (scores Q K^T, then the weighted sum of V) 2 h s where
    ``s`` is the length of the token's own sequence. Total: L (8 h^2 + 4 h i + 4 h s). For
    BGE-M3 (h 1024, i 4096, L 24) that is 604 MFLOP + 98 kFLOP x s per token. The heads add
    2 h^2 (ColBERT) + 2 h (sparse) per token when computed; embeddings, layer norms, softmax
    and GELU are left out (< 1 %). Padding is not counted: this is useful work.
    """
    return layers * (8 * hidden * hidden + 4 * hidden * intermediate + 4 * hidden * seq)


def matmul_ceiling(repeats: int = 5) -> dict[str, Any]:
    """The machine's fp32 matrix-multiply ceiling as torch reaches it with its default threads:
    the best GFLOP/s over several runs of the encoder's own GEMM shapes (tokens x 1024 @
    1024 x 4096 and the like)."""
    import torch

    best: dict[str, float] = {}
    shapes = [(2048, 1024, 4096), (2048, 4096, 1024), (2048, 1024, 1024), (512, 1024, 4096)]
    with torch.inference_mode():
        for m, k, n in shapes:
            a, b = torch.randn(m, k), torch.randn(k, n)
            a @ b  # first call: allocation and kernel selection
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                a @ b
                rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
            best[f"{m}x{k}@{k}x{n}"] = max(rates)
    return {"gflops": max(best.values()), "per_shape": best, "threads": torch.get_num_threads()}


def _load(args: argparse.Namespace) -> Any:
    """A callable encoding a list of texts with the implementation and outputs asked for."""
    outputs = dict(dense=True, sparse=args.outputs == "all", colbert=args.outputs == "all")
    if args.impl == "ours":
        from m3vdb.encoder import M3Encoder

        model = M3Encoder(args.model, device="cpu", dtype="float32")

        def run(batch: list[str]) -> tuple[Any, Any]:
            embs = model.encode(batch, max_length=args.max_length, **outputs)
            colbert = [e.colbert for e in embs] if outputs["colbert"] else None
            return [e.dense for e in embs], colbert

    else:
        from FlagEmbedding import BGEM3FlagModel

        model = BGEM3FlagModel(args.model, use_fp16=False, devices="cpu")

        def run(batch: list[str]) -> tuple[Any, Any]:
            out = model.encode(
                batch,
                batch_size=args.flag_batch_size,
                max_length=args.max_length,
                return_dense=True,
                return_sparse=outputs["sparse"],
                return_colbert_vecs=outputs["colbert"],
            )
            return list(out["dense_vecs"]), out["colbert_vecs"] if outputs["colbert"] else None

    return run


def _worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = json.loads(Path(args.corpus).read_text(encoding="utf-8"))
    run = _load(args)
    if args.suite == "lengths":
        run(["warm-up text"] * 4)
        seconds = {}
        for length, texts in corpus.items():
            start = time.perf_counter()
            run(texts)
            seconds[length] = time.perf_counter() - start
        print(json.dumps({"seconds": seconds}))
        return
    run(corpus[:4])  # warm-up: first-call allocations and kernel selection are not timed
    start = time.perf_counter()
    dense, colbert = run(corpus)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.dump:  # outputs, for the parent's equality check
        arrays = {"dense": np.stack(dense)}
        if colbert is not None:
            arrays["colbert"] = np.concatenate(colbert)
        np.savez(args.dump, **arrays)
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib}))


def _measure(
    impl: str, outputs: str, args: argparse.Namespace, corpus: Path, suite: str, dump: str = ""
) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--worker", impl, "--outputs", outputs,
        "--model", str(args.model), "--corpus", str(corpus),
        "--max-length", str(args.max_length), "--suite", suite,
        "--flag-batch-size", str(args.flag_batch_size), "--threads", str(args.threads),
        "--dump", dump,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{impl} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {suite} {impl} {outputs}: {result}", file=sys.stderr, flush=True)  # progress
    return result


def _flag_available() -> bool:
    check = "import FlagEmbedding"
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1]}


def _max_diff(ours: str, flag: str) -> dict[str, float]:
    import numpy as np

    a, b = np.load(ours), np.load(flag)
    return {name: float(np.abs(a[name] - b[name]).max()) for name in a.files}


def _mixed(args: argparse.Namespace, impls: list[str], tmp: Path, tokenizer: Any) -> dict:
    from corpus import make_corpus

    texts = make_corpus(
        args.n_texts,
        lambda t: len(tokenizer(t)["input_ids"]),
        min_tokens=args.min_tokens,
        max_tokens=args.max_tokens,
    )
    lengths = [min(len(ids), args.max_length) for ids in tokenizer(texts)["input_ids"]]
    corpus = tmp / "corpus.json"
    corpus.write_text(json.dumps(texts), encoding="utf-8")
    tokens = sum(lengths)
    config = json.loads((Path(args.model) / "config.json").read_text())
    print(
        f"mixed corpus: {len(texts)} texts, {tokens} tokens, lengths {min(lengths)}..{max(lengths)}"
        f" (median {statistics.median(lengths):.0f}); FlagEmbedding batch_size "
        f"{args.flag_batch_size}"
    )
    modes = ["dense", "all"] if args.outputs == "both" else [args.outputs]
    results: dict[str, dict[str, list[dict]]] = {m: {i: [] for i in impls} for m in modes}
    diffs: dict[str, dict[str, float]] = {}
    for repeat in range(args.repeats):
        for mode in modes:
            # alternate the order so drift of the machine hits both sides alike
            for impl in impls if repeat % 2 == 0 else impls[::-1]:
                dump = str(tmp / f"{mode}-{impl}.npz") if repeat == 0 else ""
                results[mode][impl].append(_measure(impl, mode, args, corpus, "mixed", dump))
            if repeat == 0 and len(impls) == 2:
                diffs[mode] = _max_diff(
                    str(tmp / f"{mode}-ours.npz"), str(tmp / f"{mode}-flag.npz")
                )
    mean_seq = sum(n * n for n in lengths) / tokens  # attention cost is per token's own length
    flops = flops_per_token(
        config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"], mean_seq
    )
    summary: dict[str, Any] = {
        "texts": len(texts),
        "tokens": tokens,
        "lengths": lengths,
        "flops_per_token": flops,
        "flag_batch_size": args.flag_batch_size,
        "ours_min_fill": args.ours_min_fill,
        "max_abs_diff": diffs,
    }
    for mode in modes:
        row: dict[str, Any] = {}
        for impl in impls:
            secs = [r["seconds"] for r in results[mode][impl]]
            tps = _spread([tokens / s for s in secs])
            gflops = tps["median"] * flops / 1e9
            row[impl] = {
                "tokens_per_s": tps,
                "texts_per_s": len(texts) / statistics.median(secs),
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results[mode][impl]),
                "gflops_per_s": gflops,
                "mfu": gflops / args.ceiling["gflops"],
            }
            print(
                f"{mode:5s} {impl:4s}: {tps['median']:8.1f} tok/s (min {tps['min']:.1f}, max "
                f"{tps['max']:.1f}), {row[impl]['texts_per_s']:.2f} texts/s, peak RSS "
                f"{row[impl]['peak_rss_mib']:.0f} MiB, {gflops:.1f} GFLOP/s = "
                f"{100 * row[impl]['mfu']:.0f}% of the matmul ceiling"
            )
        if "flag" in row:
            # per repeat: the two runs of a repeat ran back to back
            ratios = [
                b["seconds"] / a["seconds"]
                for a, b in zip(results[mode]["ours"], results[mode]["flag"])
            ]
            row["ratio"] = (
                row["ours"]["tokens_per_s"]["median"] / row["flag"]["tokens_per_s"]["median"]
            )
            row["ratio_per_repeat"] = _spread(ratios)
            print(
                f"{mode:5s} ours / FlagEmbedding: {row['ratio']:.2f}x (per repeat "
                f"{min(ratios):.2f}..{max(ratios):.2f}); max |diff| {diffs.get(mode)}"
            )
        summary[mode] = row
    return summary


def _lengths(args: argparse.Namespace, impls: list[str], tmp: Path, tokenizer: Any) -> dict:
    from corpus import make_corpus

    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    buckets: dict[str, list[str]] = {}
    tokens: dict[str, int] = {}
    for length in args.lengths:
        n = max(1, args.bucket_tokens // length)
        texts = make_corpus(n, count, min_tokens=length, max_tokens=length, seed=length)
        buckets[str(length)] = texts
        tokens[str(length)] = sum(
            min(len(i), args.max_length) for i in tokenizer(texts)["input_ids"]
        )
    corpus = tmp / "buckets.json"
    corpus.write_text(json.dumps(buckets), encoding="utf-8")
    print(f"per-length corpora: {[(k, len(v), tokens[k]) for k, v in buckets.items()]}")
    runs: dict[str, list[dict[str, float]]] = {i: [] for i in impls}
    for repeat in range(args.repeats):
        for impl in impls if repeat % 2 == 0 else impls[::-1]:
            runs[impl].append(_measure(impl, args.plot_outputs, args, corpus, "lengths")["seconds"])
    config = json.loads((Path(args.model) / "config.json").read_text())
    out: dict[str, Any] = {"outputs": args.plot_outputs, "flag_batch_size": args.flag_batch_size}
    for key in buckets:
        flops = flops_per_token(
            config["hidden_size"],
            config["num_hidden_layers"],
            config["intermediate_size"],
            int(key),
        )
        row: dict[str, Any] = {"texts": len(buckets[key]), "tokens": tokens[key]}
        for impl in impls:
            tps = _spread([tokens[key] / r[key] for r in runs[impl]])
            row[impl] = {
                "tokens_per_s": tps,
                "mfu": tps["median"] * flops / 1e9 / args.ceiling["gflops"],
            }
        line = f"length {key:>5}: ours {row['ours']['tokens_per_s']['median']:8.1f} tok/s"
        if "flag" in row:
            row["ratio"] = (
                row["ours"]["tokens_per_s"]["median"] / row["flag"]["tokens_per_s"]["median"]
            )
            line += (
                f", flag {row['flag']['tokens_per_s']['median']:8.1f} tok/s, {row['ratio']:.2f}x"
            )
        print(line)
        out[key] = row
    return out


def _rescale_mfu(node: Any, factor: float) -> None:
    """Rescales every ``mfu`` in the summary to the best ceiling seen in the run (the machine
    is shared: a ceiling measured while a neighbour runs is too low)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "mfu":
                node[key] = value * factor
            else:
                _rescale_mfu(value, factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint directory (default: build one with --build)")
    parser.add_argument("--build", choices=sorted(ARCHS), default="small")
    parser.add_argument("--suite", choices=["mixed", "lengths", "both"], default="mixed")
    parser.add_argument("--n-texts", type=int, default=48)
    parser.add_argument("--min-tokens", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--outputs", choices=["dense", "all", "both"], default="both")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--bucket-tokens", type=int, default=2048, help="tokens per length")
    parser.add_argument("--plot-outputs", choices=["dense", "all"], default="all")
    parser.add_argument("--flag-batch-size", type=int, default=256, help="FlagEmbedding's default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", choices=["ours", "flag"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--dump", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.impl = args.worker
        return _worker(args)

    from checkpoint_factory import build_checkpoint

    from m3vdb.encoder.checkpoint import load_tokenizer

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.model is None:
            print(f"building a random-weight '{args.build}' checkpoint...", file=sys.stderr)
            args.model = build_checkpoint(tmp / "ckpt", **ARCHS[args.build])
        tokenizer = load_tokenizer(Path(args.model))
        config = json.loads((Path(args.model) / "config.json").read_text())
        impls = ["ours", "flag"] if _flag_available() else ["ours"]
        if impls == ["ours"]:
            print("FlagEmbedding is not installed: reference figures skipped")
        ceiling_before = matmul_ceiling()
        args.ceiling = ceiling_before
        print(
            f"model: {config['num_hidden_layers']} layers x {config['hidden_size']}; fp32 matmul "
            f"ceiling {ceiling_before['gflops']:.1f} GFLOP/s ({ceiling_before['threads']} threads)"
        )
        summary: dict[str, Any] = {"model": str(args.model), "config": config}
        if args.suite in ("mixed", "both"):
            summary["mixed"] = _mixed(args, impls, tmp, tokenizer)
        if args.suite in ("lengths", "both"):
            summary["lengths"] = _lengths(args, impls, tmp, tokenizer)
        ceiling_after = matmul_ceiling()
        best = max(ceiling_before["gflops"], ceiling_after["gflops"])
        summary["ceiling"] = {"before": ceiling_before, "after": ceiling_after, "best": best}
        print(
            f"fp32 matmul ceiling after the runs: {ceiling_after['gflops']:.1f} GFLOP/s; the "
            f"fractions above are of the one before; of the best ({best:.1f}) they are x "
            f"{ceiling_before['gflops'] / best:.2f}"
        )
        _rescale_mfu(summary, ceiling_before["gflops"] / best)
        summary["load_average"] = os.getloadavg()
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
