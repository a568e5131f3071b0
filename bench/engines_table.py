"""The three-engine table of ``bench/README.md`` from ``bench/query.py --json`` files.

python bench/engines_table.py bench/results/query-*.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

NAMES = {
    "qdrant-edge": "Qdrant edge 0.9.0",
    "qdrant-edge-hnsw": "Qdrant edge + optimize() (dense HNSW)",
    "milvus": "Milvus Lite 2.5.1",
    "qdrant": "Qdrant local (`:memory:`)",
}
MODES = ("dense", "sparse", "hybrid", "colbert", "hybrid+rerank")


def main(paths: list[str]) -> None:
    rows: dict[tuple[str, int, bool], dict[str, dict]] = defaultdict(dict)
    for path in paths:
        for row in json.loads(Path(path).read_text()):
            rows[(row["backend"], row["docs"], row["colbert_stored"])][row["mode"]] = row
    print("| engine | documents | stored | ingest docs/s | " + " | ".join(MODES) + " |")
    print("|---|---|---|---|" + "---|" * len(MODES))
    for (backend, docs, colbert), modes in sorted(rows.items(), key=lambda r: (r[0][2], r[0][1])):
        ingest = next(iter(modes.values()))["ingest_docs_per_s"]
        cells = [
            f"{modes[m]['p50_ms']:.2f} / {modes[m]['p95_ms']:.2f}" if m in modes else "-"
            for m in MODES
        ]
        stored = "dense + sparse + ColBERT" if colbert else "dense + sparse"
        print(
            f"| {NAMES.get(backend, backend)} | {docs:,} | {stored} | {ingest:,.0f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
