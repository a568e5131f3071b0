"""Query latency per embedded backend, mode and collection size, with PRECOMPUTED synthetic
query embeddings (``bench/synthetic.py``: 8 to 32 tokens) so that only the database and the
connector are timed, not the model.

Modes: ``dense``, ``sparse``, ``hybrid`` (RRF of dense and sparse, no rerank) at every size
(collections without ColBERT), and additionally ``colbert`` and ``hybrid+rerank`` (ColBERT
MaxSim rerank of the fused candidates) on the sizes in ``--colbert-sizes``, whose collections
store every document's ColBERT rows (1 row of 1024 floats per token: 100k documents of ~140
tokens would be ~57 GB of float32, beyond this machine).

    python bench/query.py --sizes 1000 10000 100000 --colbert-sizes 1000 --queries 50
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import synthetic  # noqa: E402
from ingest import BACKENDS, close, ingest  # noqa: E402

from m3vdb.connectors import Connector, HybridOptions, IndexSpec  # noqa: E402
from m3vdb.schemas.data import M3Embedding  # noqa: E402

K = 10
MODES: dict[str, tuple[str, HybridOptions | None]] = {
    "dense": ("dense", None),
    "sparse": ("sparse", None),
    "colbert": ("colbert", None),
    "hybrid": ("hybrid", HybridOptions(rerank=False)),
    "hybrid+rerank": ("hybrid", HybridOptions(rerank=True)),
}


def latencies(conn: Connector, queries: list[M3Embedding], name: str) -> dict[str, float]:
    """p50 / p95 / mean milliseconds of one search per query (3 warm-up queries first)."""
    mode, options = MODES[name]
    for q in queries[:3]:
        conn.search(q, K, mode=mode, hybrid=options)  # type: ignore[arg-type]
    times = []
    for q in queries:
        start = time.perf_counter()
        conn.search(q, K, mode=mode, hybrid=options)  # type: ignore[arg-type]
        times.append(1000 * (time.perf_counter() - start))
    arr = np.array(times)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "mean_ms": float(arr.mean()),
        "n": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--colbert-sizes", type=int, nargs="*", default=[1000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--colbert-batch-size", type=int, default=8, help="see bench/ingest.py")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    runs = [(n, False) for n in args.sizes] + [(n, True) for n in args.colbert_sizes]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n, colbert in runs:
            queries = synthetic.queries(args.queries, colbert=colbert)
            modes = list(MODES) if colbert else ["dense", "sparse", "hybrid"]
            for backend in args.backends:
                conn, ingest_s = ingest(
                    backend, tmp, IndexSpec(colbert=colbert), n, colbert=colbert
                )
                for name in modes:
                    row = {"backend": backend, "docs": n, "colbert_stored": colbert, "mode": name}
                    row.update(latencies(conn, queries, name))
                    row["ingest_docs_per_s"] = n / ingest_s
                    results.append(row)
                    print(
                        f"{backend:6s} {n:>6} docs {name:14s}: p50 {row['p50_ms']:8.2f} ms, "
                        f"p95 {row['p95_ms']:8.2f} ms",
                        flush=True,
                    )
                close(conn)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
