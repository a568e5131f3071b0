"""What the commands print: a search table or JSON, a collection description, a summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from m3vdb.cli.indexing import IndexSummary
from m3vdb.connectors import Connector, Hit
from m3vdb.schemas.spec import IndexSpec

_SIGNAL_ORDER = ("dense", "sparse", "colbert", "fusion")


def snippet(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def hits_json(hits: Sequence[Hit]) -> str:
    """The hits as a JSON array (id, score, per-signal scores, text, metadata)."""
    return json.dumps(
        [
            {
                "id": h.id,
                "score": h.score,
                "signals": dict(h.signal_scores),
                "text": h.text,
                "metadata": dict(h.metadata),
            }
            for h in hits
        ],
        ensure_ascii=False,
        indent=2,
    )


def hits_table(hits: Sequence[Hit]) -> str:
    """A readable table: rank, id, score, the per-signal scores the database returned (a
    column per signal any hit has), and a text snippet."""
    if not hits:
        return "no results"
    signals = [s for s in _SIGNAL_ORDER if any(s in h.signal_scores for h in hits)]
    signals += sorted({s for h in hits for s in h.signal_scores} - set(signals))
    header = ["#", "id", "score", *signals, "text"]
    rows = [
        [
            str(rank),
            h.id,
            f"{h.score:.4f}",
            *(f"{h.signal_scores[s]:.4f}" if s in h.signal_scores else "-" for s in signals),
            snippet(h.text),
        ]
        for rank, h in enumerate(hits, start=1)
    ]
    # every column but the last (free text) is padded to its widest cell
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
        for row in [header, *rows]
    )


def describe(connector: Connector, db: str) -> dict[str, Any]:
    """What ``m3vdb info`` reports, as data: where, which backend, how many, what is stored
    and how (from the collection's IndexSpec)."""
    spec = connector.spec
    return {
        "collection": connector.collection,
        "database": db,
        "backend": type(connector).__name__,
        "entries": connector.count(),
        "stores": _stores(spec),
        "fields": vars(spec.fields).copy(),
        "metadata_indexes": {f.name: f.type for f in spec.metadata_fields},
    }


def _stores(spec: IndexSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    if spec.dense:
        out["dense"] = f"{spec.dense_dim}-d float32, metric {spec.dense_metric}"
    if spec.sparse:
        out["sparse"] = "token id -> weight, inner product"
    if spec.colbert:
        index = "ANN-indexed" if spec.colbert_index else "rerank / scan, no ANN index"
        out["colbert"] = (
            f"{spec.colbert_dim}-d {spec.colbert_precision} rows, MaxSim, up to "
            f"{spec.max_colbert_rows} rows per entry, {index}"
        )
    return out


def info_text(info: dict[str, Any]) -> str:
    """``describe``'s data as aligned lines."""
    lines = [
        ("collection", info["collection"]),
        ("database", f"{info['database']} ({info['backend']})"),
        ("entries", f"{info['entries']:,}"),
    ]
    lines += [(name, what) for name, what in info["stores"].items()]
    lines.append(("fields", ", ".join(f"{k}={v}" for k, v in info["fields"].items())))
    indexes = info["metadata_indexes"]
    lines.append(
        (
            "filterable",
            ", ".join(f"{k} ({t})" for k, t in indexes.items())
            or "any metadata key (no payload index declared)",
        )
    )
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)


def summary_text(summary: IndexSummary, *, collection: str, db: str, total: int) -> str:
    """The closing line of ``m3vdb index``."""
    parts = [
        f"indexed {summary.indexed:,} of {summary.seen:,} documents",
        f"{summary.entries:,} entries",
        f"{summary.tokens:,} tokens in {summary.seconds:.1f} s "
        f"({summary.tokens_per_second:,.0f} tok/s)",
    ]
    if summary.resumed:
        parts.append(f"{summary.resumed:,} already stored, skipped")
    if summary.empty:
        parts.append(f"{summary.empty:,} with no indexable text, skipped")
    return f"{'; '.join(parts)}. Collection {collection!r} at {db} holds {total:,} entries."
