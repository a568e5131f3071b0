"""Encoder throughput: m3vdb's ``M3Encoder`` in each precision (``--dtypes``: float32,
bfloat16, int8) against FlagEmbedding's ``BGEM3FlagModel`` on the SAME checkpoint and the SAME
corpus, in one run, alternating, several repetitions; quality of every row against our float32.

Suites:

- ``mixed``: one corpus with lengths spread log-uniformly (``--min-tokens`` .. ``--max-tokens``,
  several languages). Each measurement runs in a fresh subprocess (model loaded and warmed up
  first, not timed) so peak memory is that run's own. Reported: median and spread of tokens/s
  (real, non-pad tokens), texts/s, peak RSS, for dense only and for all three outputs, the ratio
  of medians, and the largest difference between the two implementations' outputs.
- ``lengths``: per-length corpora (every text of one length, about ``--bucket-tokens`` tokens
  per length); one subprocess per implementation and repeat loads the model once and times
  every length. Feeds the throughput-by-length plot (``bench/plot.py``).
- ``long``: one text of each ``--long-lengths`` (e.g. 4096 8192) per precision, one repeat:
  tokens/s, fraction of the dtype's ceiling, and the process's peak RSS above the loaded model.
- ``quality``: rank agreement. Queries and passages encoded by every row; per query the top 10
  passages by dense, sparse and ColBERT score, compared with float32's (overlap / 10).

All report the achieved GFLOP/s and its fraction of the matrix-multiply ceiling OF THE ROW'S
DTYPE (fp32, bf16, int8 dynamic-quantised Linear), measured in the same run
(:func:`matmul_ceiling`). Quality columns (dense cosine min, sparse top-10 overlap, ColBERT max
abs diff) compare each row with our float32 row on the same texts. FlagEmbedding is optional:
without it only our rows are printed.

    python bench/encoder.py --model /work/bench-ckpt-full --suite mixed --json out.json
    python bench/encoder.py --build small            # a random-weight 6 x 384 checkpoint
    python bench/encoder.py --build-to /work/bench-ckpt-full-scaled --build full-scaled

See bench/README.md for the figures and the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
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
    # the real architecture with BERT's initial spread: tokens stay apart through 24 layers
    # (the default spread collapses them; see bench/calibrate.py), for the quality columns
    "full-scaled": dict(
        hidden_size=1024,
        num_layers=24,
        num_heads=16,
        intermediate_size=4096,
        model_vocab=250002,
        weight_std=0.02,
    ),
    # the real layer shape with 4 layers: long-document efficiency and activation memory at
    # 1/6 of the cost (per-layer work and activations are the real model's)
    "wide4": dict(
        hidden_size=1024, num_layers=4, num_heads=16, intermediate_size=4096, weight_std=0.02
    ),
}
DTYPES = ("float32", "bfloat16", "int8")
# ONNX Runtime rows: the checkpoint exported once per run (m3vdb.encoder.onnx_export) and
# loaded by M3Encoder(folder); each maps to the ceiling of the dtype it computes in
ORT_ROWS = {"ort-float32": "float32", "ort-int8": "int8"}
GPU_DTYPES = ("float16",)  # choosable with --dtypes (FlagEmbedding on a GPU runs fp16)
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


def matmul_ceiling(dtype: str = "float32", repeats: int = 5, device: str = "cpu") -> dict[str, Any]:
    """The machine's matrix-multiply ceiling for ``dtype`` as torch reaches it with its default
    threads: the best GFLOP/s over several runs of the encoder's own GEMM shapes (tokens x 1024
    @ 1024 x 4096 and the like). For int8 it is the ``Int8Linear`` that
    ``M3Encoder(dtype="int8")`` runs (per-token activation quantisation included)."""
    import warnings

    import torch

    best: dict[str, float] = {}
    shapes = [(2048, 1024, 4096), (2048, 4096, 1024), (2048, 1024, 1024), (512, 1024, 4096)]
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m, k, n in shapes:
            if dtype == "int8":
                from m3vdb.encoder.int8 import quantize_fastest

                layer = torch.nn.Sequential(torch.nn.Linear(k, n)).eval()
                quantize_fastest(layer, rows=min(m, 256))  # the kernel M3Encoder would pick
                a = torch.randn(m, k)

                def step(a: Any = a, layer: Any = layer) -> Any:
                    return layer(a)

            else:
                a = torch.randn(m, k, dtype=getattr(torch, dtype), device=device)
                b = torch.randn(k, n, dtype=getattr(torch, dtype), device=device)

                def step(a: Any = a, b: Any = b) -> Any:
                    out = a @ b
                    if device != "cpu":
                        torch.cuda.synchronize()
                    return out

            step()  # first call: allocation and kernel selection
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
            best[f"{m}x{k}@{k}x{n}"] = max(rates)
    return {"gflops": max(best.values()), "per_shape": best, "threads": torch.get_num_threads()}


def ceilings(dtypes: list[str], device: str = "cpu") -> dict[str, dict[str, Any]]:
    """:func:`matmul_ceiling` for every dtype measured, on the device the rows run on
    (FlagEmbedding runs fp32 on the CPU, fp16 on a GPU)."""
    extra = "float32" if device == "cpu" else "float16"
    return {
        dtype: matmul_ceiling(dtype, device=device) for dtype in dict.fromkeys([extra, *dtypes])
    }


def _ceiling_of(impl: str, args: argparse.Namespace) -> float:
    flag_dtype = "float32" if args.device == "cpu" else "float16"
    dtype = flag_dtype if impl == "flag" else ORT_ROWS.get(impl, impl)
    return float(args.ceiling[dtype]["gflops"])


def _load(args: argparse.Namespace) -> Any:
    """A callable encoding a list of texts with the implementation and outputs asked for."""
    outputs = dict(dense=True, sparse=args.outputs == "all", colbert=args.outputs == "all")
    if args.impl != "flag":
        from m3vdb.encoder import M3Encoder

        # an ORT row's --model is its exported folder, which runs in its exported precision
        dtype = "auto" if args.impl in ORT_ROWS else args.impl
        model = M3Encoder(args.model, device=args.device, dtype=dtype)
        print(
            json.dumps({"runtime": model.runtime, "precision": model.precision,
                        "int8_kernel": model.int8_kernel}),
            file=sys.stderr,
        )  # fmt: skip

        def run(batch: list[str]) -> tuple[Any, Any, Any]:
            embs = model.encode(batch, max_length=args.max_length, **outputs)
            colbert = [e.colbert for e in embs] if outputs["colbert"] else None
            sparse = [e.sparse for e in embs] if outputs["sparse"] else None
            return [e.dense for e in embs], sparse, colbert

    else:
        from FlagEmbedding import BGEM3FlagModel

        on_gpu = args.device != "cpu"
        model = BGEM3FlagModel(args.model, use_fp16=on_gpu, devices=args.device)

        def run(batch: list[str]) -> tuple[Any, Any, Any]:
            out = model.encode(
                batch,
                batch_size=args.flag_batch_size,
                max_length=args.max_length,
                return_dense=True,
                return_sparse=outputs["sparse"],
                return_colbert_vecs=outputs["colbert"],
            )
            sparse = None
            if outputs["sparse"]:
                sparse = [{int(k): float(v) for k, v in w.items()} for w in out["lexical_weights"]]
            colbert = out["colbert_vecs"] if outputs["colbert"] else None
            return list(out["dense_vecs"]), sparse, colbert

    return run


def _save_outputs(path: str, dense: Any, sparse: Any, colbert: Any) -> None:
    """Outputs to ``path`` (npz) for the parent's quality columns."""
    import numpy as np

    arrays = {"dense": np.stack(dense).astype(np.float32)}
    if colbert is not None:
        arrays["colbert"] = np.concatenate(colbert).astype(np.float32)
        arrays["colbert_rows"] = np.array([len(c) for c in colbert])
    if sparse is not None:
        arrays["sparse_ids"] = np.array([k for w in sparse for k in w], dtype=np.int64)
        arrays["sparse_weights"] = np.array([v for w in sparse for v in w.values()])
        arrays["sparse_sizes"] = np.array([len(w) for w in sparse])
    np.savez(path, **arrays)


def _rss_mib(field: str = "VmRSS") -> float:
    """The process's current (``VmRSS``) or peak (``VmHWM``) resident memory, MiB (Linux).

    ``VmHWM`` rather than ``getrusage``'s ``ru_maxrss``: the latter survives ``exec``, so a
    worker would report its parent's peak when that is higher than its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _worker(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = json.loads(Path(args.corpus).read_text(encoding="utf-8"))
    start = time.perf_counter()
    run = _load(args)
    load_seconds = time.perf_counter() - start
    load_peak_mib = _rss_mib("VmHWM")
    if args.suite == "lengths":
        run(["warm-up text"] * 4)
        seconds = {}
        for length, texts in corpus.items():
            start = time.perf_counter()
            run(texts)
            seconds[length] = time.perf_counter() - start
        print(json.dumps({"seconds": seconds}))
        return
    if args.suite == "long":
        run(["warm-up text"] * 2)
        loaded_rss = _rss_mib()
        start = time.perf_counter()
        dense, sparse, colbert = run(corpus)
        seconds = time.perf_counter() - start
        peak_mib = _rss_mib("VmHWM")
        print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib, "loaded_mib": loaded_rss}))
        return
    if args.suite == "quality":
        dense, sparse, colbert = run(corpus)
        _save_outputs(args.dump, dense, sparse, colbert)
        print(json.dumps({"texts": len(corpus)}))
        return
    run(corpus[:4])  # warm-up: first-call allocations and kernel selection are not timed
    start = time.perf_counter()
    dense, sparse, colbert = run(corpus)
    seconds = time.perf_counter() - start
    peak_mib = _rss_mib("VmHWM")
    if args.dump:  # outputs, for the parent's quality columns
        _save_outputs(args.dump, dense, sparse, colbert)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mib": peak_mib,
                "load_peak_rss_mib": load_peak_mib,
                "load_seconds": load_seconds,
            }
        )
    )


def _measure(
    impl: str, outputs: str, args: argparse.Namespace, corpus: Path, suite: str, dump: str = ""
) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--worker", impl, "--outputs", outputs,
        "--model", str(args.onnx.get(impl, args.model)), "--corpus", str(corpus),
        "--max-length", str(args.max_length), "--suite", suite,
        "--flag-batch-size", str(args.flag_batch_size), "--threads", str(args.threads),
        "--device", args.device,
        "--dump", dump,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{impl} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if impl != "flag":  # what the encoder resolved (int8: the kernel measured at load)
        loaded = [x for x in done.stderr.splitlines() if x.startswith('{"runtime"')]
        result.update(json.loads(loaded[-1]) if loaded else {})
    print(f"  {suite} {impl} {outputs}: {result}", file=sys.stderr, flush=True)  # progress
    return result


def _impls(args: argparse.Namespace) -> list[str]:
    """The rows: our dtypes (float32 first: the quality reference), then FlagEmbedding."""
    impls = list(dict.fromkeys(["float32", *args.dtypes]))
    if not args.no_flag and _flag_available():
        impls.append("flag")
    else:
        print("FlagEmbedding not installed or --no-flag: reference row skipped")
    return impls


def _flag_available() -> bool:
    check = "import FlagEmbedding"
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1]}


def _sparse_dicts(arrays: Any) -> list[dict[int, float]]:
    out, offset = [], 0
    for size in arrays["sparse_sizes"].tolist():
        ids = arrays["sparse_ids"][offset : offset + size].tolist()
        out.append(dict(zip(ids, arrays["sparse_weights"][offset : offset + size].tolist())))
        offset += size
    return out


def _top10(weights: dict[int, float]) -> set[int]:
    return set(sorted(weights, key=weights.__getitem__, reverse=True)[:10])


def quality(reference: str, other: str) -> dict[str, float]:
    """``other``'s outputs against ``reference``'s (npz files from the workers): the lowest
    dense cosine, the mean top-10 overlap of the sparse weights (texts with weights only), the
    largest ColBERT difference."""
    import numpy as np

    a, b = np.load(reference), np.load(other)
    out = {"dense_cos_min": float(np.min(np.sum(a["dense"] * b["dense"], axis=1)))}
    if "colbert" in a.files and "colbert" in b.files:
        out["colbert_max_abs_diff"] = float(np.abs(a["colbert"] - b["colbert"]).max())
    if "sparse_ids" in a.files and "sparse_ids" in b.files:
        overlaps = [
            len(_top10(x) & _top10(y)) / min(10, len(x))
            for x, y in zip(_sparse_dicts(a), _sparse_dicts(b))
            if x
        ]
        out["sparse_top10_overlap"] = float(np.mean(overlaps)) if overlaps else float("nan")
        out["sparse_texts"] = len(overlaps)
    return out


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
    qualities: dict[str, dict[str, dict[str, float]]] = {}
    for repeat in range(args.repeats):
        for mode in modes:
            # rotate the order so drift of the machine hits every row alike
            shift = repeat % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                dump = str(tmp / f"{mode}-{impl}.npz") if repeat == 0 else ""
                results[mode][impl].append(_measure(impl, mode, args, corpus, "mixed", dump))
            if repeat == 0:
                reference = str(tmp / f"{mode}-float32.npz")
                qualities[mode] = {
                    impl: quality(reference, str(tmp / f"{mode}-{impl}.npz")) for impl in impls
                }
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
        "quality_vs_float32": qualities,
    }
    for mode in modes:
        row: dict[str, Any] = {}
        base = results[mode]["float32"]
        for impl in impls:
            secs = [r["seconds"] for r in results[mode][impl]]
            tps = _spread([tokens / s for s in secs])
            gflops = tps["median"] * flops / 1e9
            # per repeat: every row of a repeat ran within the same minute or two
            ratios = [b["seconds"] / r["seconds"] for b, r in zip(base, results[mode][impl])]
            row[impl] = {
                "tokens_per_s": tps,
                "best_tokens_per_s": tps["max"],
                "texts_per_s": len(texts) / statistics.median(secs),
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results[mode][impl]),
                "load_peak_rss_mib": statistics.median(
                    r["load_peak_rss_mib"] for r in results[mode][impl]
                ),
                "gflops_per_s": gflops,
                "mfu": gflops / _ceiling_of(impl, args),
                "best_mfu": tps["max"] * flops / 1e9 / _ceiling_of(impl, args),
                "x_float32": _spread(ratios),
                "quality": qualities[mode][impl],
            }
            q = qualities[mode][impl]
            print(
                f"{mode:5s} {impl:8s}: {tps['median']:8.1f} tok/s (min {tps['min']:.1f}, max "
                f"{tps['max']:.1f}), x float32 {row[impl]['x_float32']['median']:.2f} (per "
                f"repeat {min(ratios):.2f}..{max(ratios):.2f}), {gflops:.1f} GFLOP/s = "
                f"{100 * row[impl]['mfu']:.0f}% of its dtype's ceiling (best repeat "
                f"{100 * row[impl]['best_mfu']:.0f}%), peak RSS {row[impl]['peak_rss_mib']:.0f} "
                f"MiB (after load {row[impl]['load_peak_rss_mib']:.0f}); vs float32 {q}"
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
        shift = repeat % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            runs[impl].append(_measure(impl, args.plot_outputs, args, corpus, "lengths")["seconds"])
    config = json.loads((Path(args.model) / "config.json").read_text())
    out: dict[str, Any] = {
        "outputs": args.plot_outputs,
        "flag_batch_size": args.flag_batch_size,
        "impls": impls,
    }
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
                "mfu": tps["median"] * flops / 1e9 / _ceiling_of(impl, args),
            }
        print(
            f"length {key:>5}: "
            + ", ".join(
                f"{i} {row[i]['tokens_per_s']['median']:.1f} tok/s ({100 * row[i]['mfu']:.0f}%)"
                for i in impls
            )
        )
        out[key] = row
    return out


def _long(args: argparse.Namespace, impls: list[str], tmp: Path, tokenizer: Any) -> dict:
    """One text per length per row, once: efficiency and peak memory on long documents."""
    from corpus import make_corpus

    config = json.loads((Path(args.model) / "config.json").read_text())
    out: dict[str, Any] = {}
    for length in args.long_lengths:
        [text] = make_corpus(
            1,
            lambda t: len(tokenizer(t)["input_ids"]),
            min_tokens=length,
            max_tokens=length,
            seed=length,
        )
        tokens = min(len(tokenizer(text)["input_ids"]), args.max_length)
        corpus = tmp / f"long-{length}.json"
        corpus.write_text(json.dumps([text]), encoding="utf-8")
        flops = flops_per_token(
            config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"], tokens
        )
        row: dict[str, Any] = {"tokens": tokens}
        for impl in [i for i in impls if i != "flag"]:
            r = _measure(impl, args.plot_outputs, args, corpus, "long")
            tps = tokens / r["seconds"]
            row[impl] = {
                **r,
                "tokens_per_s": tps,
                "mfu": tps * flops / 1e9 / _ceiling_of(impl, args),
                "peak_above_loaded_mib": r["peak_rss_mib"] - r["loaded_mib"],
            }
            print(
                f"long {tokens:>5} tokens {impl:8s}: {r['seconds']:.1f} s, {tps:.1f} tok/s, "
                f"{100 * row[impl]['mfu']:.0f}% of its dtype's ceiling, peak RSS "
                f"{r['peak_rss_mib']:.0f} MiB ({row[impl]['peak_above_loaded_mib']:.0f} above "
                "the loaded model)"
            )
        out[str(length)] = row
    return out


def _quality(args: argparse.Namespace, impls: list[str], tmp: Path, tokenizer: Any) -> dict:
    """Rank agreement with float32: per query, the top 10 passages by each score."""
    import numpy as np
    from corpus import make_corpus

    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    queries = make_corpus(args.n_queries, count, min_tokens=8, max_tokens=24, seed=7)
    passages = make_corpus(args.n_passages, count, min_tokens=32, max_tokens=256, seed=8)
    corpus = tmp / "quality.json"
    corpus.write_text(json.dumps(queries + passages), encoding="utf-8")
    rows = [i for i in impls if i != "flag"]
    for impl in rows:
        _measure(impl, "all", args, corpus, "quality", str(tmp / f"quality-{impl}.npz"))

    def scores(impl: str) -> dict[str, Any]:
        data = np.load(tmp / f"quality-{impl}.npz")
        dense = data["dense"]
        sparse = _sparse_dicts(data)
        colbert = np.split(data["colbert"], np.cumsum(data["colbert_rows"])[:-1])
        nq = len(queries)
        out = {"dense": dense[:nq] @ dense[nq:].T}
        out["sparse"] = np.array(
            [
                [sum(w * p.get(t, 0.0) for t, w in q.items()) for p in sparse[nq:]]
                for q in sparse[:nq]
            ]
        )
        out["colbert"] = np.array(
            [[float((q @ p.T).max(axis=1).mean()) for p in colbert[nq:]] for q in colbert[:nq]]
        )
        return out

    reference = scores("float32")
    summary: dict[str, Any] = {"queries": len(queries), "passages": len(passages)}
    for impl in rows[1:]:
        other = scores(impl)
        row = {}
        for kind in reference:
            top_ref = np.argsort(-reference[kind], axis=1)[:, :10]
            top_other = np.argsort(-other[kind], axis=1)[:, :10]
            overlaps = [len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_other)]
            row[kind] = {"top10_overlap_mean": float(np.mean(overlaps)), "min": min(overlaps)}
            row[kind]["top1_same"] = float(np.mean(top_ref[:, 0] == top_other[:, 0]))
        summary[impl] = row
        print(f"rank agreement with float32, {impl}: {row}")
    return summary


def _rescale_rows(node: Any, dtype: str, factor: float) -> None:
    """Rescales every ``mfu`` of ``dtype``'s rows to the best ceiling seen in the run (the
    machine is shared: a ceiling measured while a neighbour runs is too low)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == dtype or (dtype == "float32" and key == "flag"):
                if isinstance(value, dict):
                    for name in ("mfu", "best_mfu"):
                        if name in value:
                            value[name] *= factor
            else:
                _rescale_rows(value, dtype, factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint directory (default: build one with --build)")
    parser.add_argument("--build", choices=sorted(ARCHS), default="small")
    parser.add_argument("--build-to", help="build --build's checkpoint into this folder, exit")
    parser.add_argument(
        "--suite",
        nargs="+",
        choices=["mixed", "lengths", "long", "quality"],
        default=["mixed"],
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=[*DTYPES, *GPU_DTYPES, *ORT_ROWS],
        default=None,
        help="rows (default: float32 bfloat16 int8, and ort-float32 ort-int8 where "
        "onnxruntime is installed)",
    )
    parser.add_argument("--no-flag", action="store_true", help="skip the FlagEmbedding row")
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (FlagEmbedding then runs fp16)"
    )
    parser.add_argument("--long-lengths", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--n-queries", type=int, default=16)
    parser.add_argument("--n-passages", type=int, default=48)
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
    parser.add_argument(
        "--worker", choices=[*DTYPES, *GPU_DTYPES, *ORT_ROWS, "flag"], help=argparse.SUPPRESS
    )
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--dump", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.impl = args.worker
        args.suite = args.suite[0]
        return _worker(args)

    from m3vdb.encoder.checkpoint import load_tokenizer

    if args.build_to:
        _build(args.build, Path(args.build_to))
        return None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.model is None:
            print(f"building a random-weight '{args.build}' checkpoint...", file=sys.stderr)
            args.model = _build(args.build, tmp / "ckpt")
        tokenizer = load_tokenizer(Path(args.model))
        config = json.loads((Path(args.model) / "config.json").read_text())
        if args.dtypes is None:
            args.dtypes = [*DTYPES, *(ORT_ROWS if _ort_available() else ())]
        impls = _impls(args)
        args.onnx = _export_onnx_rows(impls, args.model, tmp)
        torch_dtypes = [d for d in args.dtypes if d not in ORT_ROWS]
        # the ORT rows' fractions are of the torch ceiling of the dtype they compute in
        args.dtypes = list(
            dict.fromkeys(torch_dtypes + [ORT_ROWS[d] for d in impls if d in ORT_ROWS])
        )
        ceiling_before = ceilings(args.dtypes, args.device)
        args.ceiling = ceiling_before
        print(
            f"model: {config['num_hidden_layers']} layers x {config['hidden_size']}; rows {impls};"
            " matmul ceilings "
            + ", ".join(f"{d} {c['gflops']:.1f} GFLOP/s" for d, c in ceiling_before.items())
            + f" ({ceiling_before['float32']['threads']} threads); load average "
            f"{os.getloadavg()}"
        )
        summary: dict[str, Any] = {"model": str(args.model), "config": config, "rows": impls}
        suites = {"mixed": _mixed, "lengths": _lengths, "long": _long, "quality": _quality}
        for suite in args.suite:
            summary[suite] = suites[suite](args, impls, tmp, tokenizer)
        ceiling_after = ceilings(args.dtypes, args.device)
        best = {
            d: max(ceiling_before[d]["gflops"], ceiling_after[d]["gflops"]) for d in ceiling_before
        }
        summary["ceiling"] = {"before": ceiling_before, "after": ceiling_after, "best": best}
        print(
            "matmul ceilings after the runs: "
            + ", ".join(f"{d} {c['gflops']:.1f}" for d, c in ceiling_after.items())
            + " GFLOP/s; the fractions above are of the ones before (the JSON rescales them to "
            "the best of the two)"
        )
        for suite in args.suite:
            for dtype, factor in ((d, ceiling_before[d]["gflops"] / best[d]) for d in best):
                _rescale_rows(summary[suite], dtype, factor)
        summary["load_average_end"] = os.getloadavg()
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(summary, indent=2))


def _ort_available() -> bool:
    check = "import onnxruntime, onnx"
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def _export_onnx_rows(impls: list[str], model: str, tmp: Path) -> dict[str, Path]:
    """The ONNX folder of each ORT row, exported once for the run (not timed)."""
    from m3vdb.encoder.onnx_export import export_onnx

    folders = {}
    for impl in impls:
        if impl in ORT_ROWS:
            start = time.perf_counter()
            folders[impl] = export_onnx(model, tmp / impl, int8=impl == "ort-int8")
            print(f"exported {impl} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return folders


def _build(arch: str, out: Path) -> Path:
    """Builds a benchmark checkpoint; ``full-scaled`` also gets its sparse head centred."""
    from checkpoint_factory import build_checkpoint

    path = build_checkpoint(out, **ARCHS[arch])  # type: ignore[arg-type]
    if arch == "full-scaled":
        from calibrate import centre_sparse_head
        from corpus import make_corpus

        from m3vdb.encoder.checkpoint import load_tokenizer

        tokenizer = load_tokenizer(path)
        texts = make_corpus(
            6, lambda t: len(tokenizer(t)["input_ids"]), min_tokens=32, max_tokens=256, seed=99
        )
        print(f"{path}: {centre_sparse_head(path, texts)}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
