"""Encoding past one process: ``m3vdb encode`` in one process against ``m3vdb encode --ray``
with an actor pool, for N and 10N synthetic documents: throughput, and the driver's peak
memory (does it grow with the corpus?).

Each (path, N) runs in a fresh Python process, so its peak RSS (``ru_maxrss``) is its own: the
driver of the Ray path holds no model (the actors do), the single process holds the model and
one batch. Both write the m3vdb embedding format (Parquet, all three outputs, ColBERT float32)
to a temporary folder, from a JSONL corpus read as ``m3vdb encode`` reads it.

Usage::

    python bench/scale.py --n 500 --factor 10 --actors 2 --build mid
    python bench/scale.py --model /path/to/checkpoint --n 1000   # any BGE-M3-shaped checkpoint

Prints a Markdown table (and ``--json PATH`` writes the rows).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

# random-weight checkpoints (tests/checkpoint_factory.py); weight_std 0.02 keeps sparse
# weights > 0 (the default spread collapses a deeper model: no sparse weight, no entry)
ARCHS = {
    "tiny": dict(weight_std=0.02),
    "mid": dict(hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512, weight_std=0.02),
    "small": dict(
        hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1536, weight_std=0.02
    ),
}


def write_corpus(path: Path, n: int, *, min_tokens: int, max_tokens: int, seed: int = 0) -> int:
    """``n`` JSONL documents of ~4 characters per token, lengths log-uniform; returns the
    characters written."""
    from corpus import SENTENCES

    rng = random.Random(seed)
    chars = 0
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            tokens = int(math.exp(rng.uniform(math.log(min_tokens), math.log(max_tokens))))
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < 4 * tokens:
                parts.append(SENTENCES[rng.randrange(len(SENTENCES))])
            text = " ".join(parts)[: 4 * tokens]
            chars += len(text)
            f.write(json.dumps({"id": f"doc-{i}", "text": text, "metadata": {"n": i}}) + "\n")
    return chars


def one(args: argparse.Namespace) -> None:
    """One measurement in this process: prints a JSON row."""
    from m3vdb.indexing import Corpus

    corpus = Corpus.from_paths([args.corpus])
    out = Path(args.out)
    start = time.perf_counter()
    if args.path == "process":
        from m3vdb.encoder import M3Encoder
        from m3vdb.formats.transfer import encode

        report = encode(
            corpus,
            out,
            encoder=lambda: M3Encoder(args.model, device="cpu", dtype="float32"),
            batch_size=args.batch_size,
        )
    else:
        from m3vdb.cli.model import spec_for_model
        from m3vdb.ray import ActorPool, encode_corpus

        report = encode_corpus(
            corpus,
            out,
            model=args.model,
            spec=spec_for_model(args.model),
            pool=ActorPool(
                concurrency=args.actors,
                batch_size=args.batch_size,
                device="cpu",
                dtype="float32",
            ),
        )
    wall = time.perf_counter() - start
    parquet = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    print(
        json.dumps(
            dict(
                path=args.path,
                actors=args.actors if args.path == "ray" else 1,
                n=report.seen,
                entries=report.entries,
                tokens=report.tokens,
                wall_s=round(wall, 2),
                docs_per_s=round(report.seen / wall, 1),
                tokens_per_s=round(report.tokens / wall),
                peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                parquet_mib=round(parquet / 2**20, 1),
            )
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: build --build's)")
    parser.add_argument("--build", choices=sorted(ARCHS), default="mid")
    parser.add_argument("--n", type=int, default=500, help="documents of the smaller corpus")
    parser.add_argument("--factor", type=int, default=10, help="the larger corpus is n x this")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-tokens", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--json", help="write the rows here")
    # one measurement (run by main in a fresh process)
    parser.add_argument("--one", dest="path", choices=("process", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        one(args)
        return

    with tempfile.TemporaryDirectory(prefix="m3vdb-scale-") as tmp_name:
        tmp = Path(tmp_name)
        if args.model is None:
            from checkpoint_factory import build_checkpoint

            args.model = str(build_checkpoint(tmp / "ckpt", **ARCHS[args.build]))  # type: ignore[arg-type]
        rows = []
        for n in (args.n, args.n * args.factor):
            corpus = tmp / f"corpus-{n}.jsonl"
            chars = write_corpus(corpus, n, min_tokens=args.min_tokens, max_tokens=args.max_tokens)
            print(f"corpus of {n:,} documents, {chars / 2**20:.1f} MiB of text", file=sys.stderr)
            for path in ("process", "ray"):
                out = tmp / f"out-{path}-{n}"
                command = [
                    sys.executable,
                    __file__,
                    "--one",
                    path,
                    "--corpus",
                    str(corpus),
                    "--out",
                    str(out),
                    "--model",
                    args.model,
                    "--actors",
                    str(args.actors),
                    "--batch-size",
                    str(args.batch_size),
                ]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    sys.exit(f"{path} n={n} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(row, file=sys.stderr)
                rows.append(row)
                subprocess.run(["rm", "-rf", str(out)], check=False)
    print("| path | documents | entries | tokens | wall s | docs/s | tokens/s | driver peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        label = "1 process" if r["path"] == "process" else f"Ray, {r['actors']} actors"
        print(
            f"| {label} | {r['n']:,} | {r['entries']:,} | {r['tokens']:,} | {r['wall_s']} | "
            f"{r['docs_per_s']} | {r['tokens_per_s']:,} | {r['peak_rss_mib']} MiB |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
