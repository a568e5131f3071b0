"""What the commands print: a search table or JSON, a collection description, a summary.

Tables are measured in terminal cells, not characters (a CJK character or an emoji takes
two), and fit the terminal's width (80 columns when it cannot be told) by cutting the text
snippet, on a word boundary, and, where needed, the id.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from m3vdb.connectors.base import Connector
from m3vdb.connectors.collection import parent_of
from m3vdb.indexing import IndexReport
from m3vdb.schemas.data import Hit
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from m3vdb.connectors import CollectionInfo

ELLIPSIS = "…"
MIN_SNIPPET = 12


# --------------------------------------------------------------------------- visible text

# Bidirectional embeddings, overrides and isolates: they reorder what the terminal shows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(text: str) -> str:
    """``text`` safe to print on a terminal: every control character (ESC, BEL, backspace,
    CR, newline, tab, DEL, the C1 controls such as CSI), bidirectional override and lone
    surrogate is written as an escape (``\\x1b``, ``\\u202e``); everything else, non-ASCII
    text included, is kept. A lone surrogate from a non-UTF-8 file name (``os.fsdecode``'s
    ``\\udc80``) is shown as the byte it stands for (``\\x80``).

    Everything the CLI prints that came from data (texts, ids, metadata, file names, error
    messages) goes through here; ``--json`` output does not (JSON escapes what it must).
    """
    out = []
    for ch in text:
        code = ord(ch)
        category = unicodedata.category(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif category in ("Cc", "Cs") or ch in _BIDI:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


# --------------------------------------------------------------------------- cell widths


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes: 2 for wide and full-width characters (CJK, most
    emoji), 0 for combining marks and zero-width characters, 1 otherwise."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` cells."""
    return text + " " * max(0, width - cell_width(text))


def cut(text: str, width: int, *, words: bool = True) -> str:
    """``text`` cut to at most ``width`` cells with an ellipsis; on a word boundary when
    ``words`` and one lies in the last third (CJK text has no spaces: cut anywhere)."""
    if cell_width(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    out, used = [], 0
    for ch in text:
        w = cell_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    head = "".join(out)
    if words:
        space = head.rfind(" ")
        if space >= len(head) * 2 // 3:
            head = head[:space]
    return head.rstrip() + ELLIPSIS


def cut_left(text: str, width: int) -> str:
    """``text`` cut from the left (the end of a path is what tells ids apart)."""
    if cell_width(text) <= width:
        return text
    out, used = [], 0
    for ch in reversed(text):
        w = cell_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return ELLIPSIS + "".join(reversed(out))


def snippet(text: str, *, mid_text: bool = False) -> str:
    """``text`` on one line. ``mid_text``: the text is a window that may begin inside a word
    (windows start at a token, and a token can be part of a word): it then starts at the
    next word, after an ellipsis."""
    flat = " ".join(text.split())
    if mid_text and " " in flat:
        flat = ELLIPSIS + flat.split(" ", 1)[1]
    return flat


def terminal_width() -> int:
    return max(40, shutil.get_terminal_size(fallback=(80, 24)).columns)


# --------------------------------------------------------------------------- search results


@dataclass(frozen=True)
class Row:
    """One result line: the document, its best entry, and the score's label."""

    doc_id: str
    hit: Hit
    label: str

    @property
    def window(self) -> str | None:
        chunks = self.hit.metadata.get("chunks")
        if isinstance(chunks, int) and chunks > 1:
            return f"{self.hit.metadata.get('chunk', 0)}/{chunks}"
        return None


def score_label(mode: str, *, rerank: bool, fusion: str, spec: IndexSpec) -> str:
    """The signal a search's score is, the same on every database: the mode itself, or for
    hybrid, ``colbert`` (reranked by MaxSim) or the fusion (``rrf`` / ``weighted``)."""
    if mode != "hybrid":
        return mode
    return "colbert" if rerank and spec.colbert else fusion


def rows(hits: Sequence[Hit], label: str, *, group: bool, k: int) -> list[Row]:
    """The result lines: with ``group``, one per document (its best-scoring window, hits
    being ranked best first), else one per entry; at most ``k``."""
    out: list[Row] = []
    seen: set[str] = set()
    for hit in hits:
        doc_id = parent_of(hit) if group else hit.id
        if doc_id in seen:
            continue
        seen.add(doc_id)
        out.append(Row(doc_id, hit, label))
        if len(out) == k:
            break
    return out


def _mid_text(hit: Hit) -> bool:
    chunk = hit.metadata.get("chunk")
    return isinstance(chunk, int) and chunk > 0


def signals(row: Row) -> dict[str, float]:
    """The per-signal scores, always including the score's own label."""
    out = {name: float(v) for name, v in row.hit.signal_scores.items()}
    out.setdefault(row.label, float(row.hit.score))
    return out


def hits_json(result: Sequence[Row]) -> str:
    """The rows as a JSON array (id, the entry's id, score and its label, per-signal scores,
    text, metadata)."""
    return json.dumps(
        [
            {
                "id": r.doc_id,
                "entry_id": r.hit.id,
                "score": r.hit.score,
                "score_label": r.label,
                "signals": signals(r),
                "text": r.hit.text,
                "metadata": dict(r.hit.metadata),
            }
            for r in result
        ],
        ensure_ascii=False,
        indent=2,
    )


def hits_table(result: Sequence[Row], *, width: int | None = None) -> str:
    """Rank, id (with ``#window/windows`` for a window), the score under its signal's name,
    and a snippet, fitted to ``width`` cells (default: the terminal's)."""
    if not result:
        return "no results"
    width = width or terminal_width()
    label = result[0].label
    header = ["#", "id", label, "text"]
    body = [
        [
            str(rank),
            visible(r.doc_id + (f" #{r.window}" if r.window and r.doc_id != r.hit.id else "")),
            f"{r.hit.score:.4f}",
            visible(snippet(r.hit.text, mid_text=_mid_text(r.hit))),
        ]
        for rank, r in enumerate(result, start=1)
    ]
    gap = 2
    rank_w = max(cell_width(x[0]) for x in [header, *body])
    score_w = max(cell_width(x[2]) for x in [header, *body])
    fixed = rank_w + score_w + 3 * gap
    id_max = max(cell_width(x[1]) for x in [header, *body])
    # the id keeps its full width unless the snippet would get fewer than MIN_SNIPPET cells
    id_w = min(id_max, max(len("id"), width - fixed - MIN_SNIPPET))
    text_w = max(1, width - fixed - id_w)
    lines = []
    for row in [header, *body]:
        cells = [
            pad(row[0], rank_w),
            pad(cut_left(row[1], id_w), id_w),
            pad(row[2], score_w),
            cut(row[3], text_w),
        ]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- info, summary


def describe(connector: Connector, db: str) -> dict[str, Any]:
    """What ``m3vdb info`` reports, as data: where, which backend, how many, what is stored
    and how (from the collection's IndexSpec)."""
    spec = connector.spec
    return {
        "collection": connector.collection,
        "database": db,
        "backend": type(getattr(connector, "engine", connector)).__name__,
        "model": getattr(spec, "model", None),
        "documents": documents(connector, entries := connector.count()),
        "entries": entries,
        "stores": _stores(spec),
        "colbert_storage": colbert_storage_text(spec) if spec.colbert else None,
        "fields": vars(spec.fields).copy(),
        "metadata_indexes": {f.name: f.type for f in spec.metadata_fields},
    }


def documents(connector: Connector, entries: int) -> int | None:
    """How many documents the entries hold: a long document is stored as windows ``DOC#0,
    DOC#1, ...``, so the entries minus the windows after the first (``chunk >= 1``; few
    entries to list in most collections). None when the database cannot list by filter."""
    scan = getattr(connector, "scan", None)
    if scan is None:
        return None
    later = sum(1 for _ in scan({"chunk": {"gte": 1}}))
    return entries - later


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
    fde = getattr(spec, "colbert_fde", None)
    if fde is not None:
        out["colbert_fde"] = (
            f"MUVERA first stage for --mode colbert: {fde.dim}-d vector (k_sim={fde.k_sim}, "
            f"d_proj={fde.d_proj}, repetitions={fde.repetitions}"
            + (f", final_dim={fde.final_dim}" if fde.final_dim is not None else "")
            + f", seed={fde.seed}), {fde.candidates} candidates reranked by MaxSim"
        )
    return out


def colbert_storage_text(spec: IndexSpec) -> str:
    """The ColBERT storage settings in words: precision, bytes per token, pooling."""
    pool = getattr(spec, "colbert_pool_factor", 1)
    pooled = (
        f"token pooling factor {pool} (about 1/{pool} of the rows)"
        if pool > 1
        else ("no token pooling")
    )
    return (
        f"{spec.colbert_precision}, {_bytes(spec.colbert_bytes_per_token)} bytes per token "
        f"({spec.colbert_dim}-d), {pooled}"
    )


def _bytes(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def info_text(info: dict[str, Any]) -> str:
    """``describe``'s data as aligned lines."""
    lines = [
        ("collection", info["collection"]),
        ("database", f"{info['database']} ({info['backend']})"),
        ("model", info["model"] or "not recorded (built before m3vdb recorded models)"),
        (
            "documents",
            "?" if info["documents"] is None else f"{info['documents']:,}",
        ),
        ("entries", f"{info['entries']:,} (a long document is several windows)"),
    ]
    lines += [(name, what) for name, what in info["stores"].items()]
    if info.get("colbert_storage"):
        lines.append(("colbert storage", info["colbert_storage"]))
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
    return "\n".join(f"{k.ljust(width)}  {visible(v)}" for k, v in lines)


def _names(ids: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(visible(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most:,} more" if len(ids) > most else "")


def skipped_files(skipped: Sequence[Any], most: int = 10) -> list[str]:
    """The files a run left out, grouped by reason, each named (up to ``most`` per reason):
    no file is skipped in silence."""
    errors = [s.file for s in skipped if s.error]
    out = []
    if errors:
        out.append(
            f"{len(errors):,} {'file' if len(errors) == 1 else 'files'} skipped for errors "
            f"(see above): {_names(errors, most)}"
        )
    reasons: dict[str, list[str]] = {}
    for s in skipped:
        if not s.error:
            reasons.setdefault(s.reason, []).append(s.file)
    for reason, files in reasons.items():
        out.append(f"{len(files):,} not read ({reason}): {_names(files, most)}")
    return out


def summary_text(summary: IndexReport, *, collection: str, db: str, total: int) -> str:
    """The closing lines of ``m3vdb index``."""
    parts = [f"indexed {summary.indexed:,} of {summary.seen:,} documents"]
    if summary.split:
        parts.append(f"{summary.split:,} split into windows")
    if summary.replaced:
        parts.append(f"{summary.replaced:,} replaced a changed version")
    parts += [
        f"{summary.entries:,} entries",
        f"{summary.tokens:,} tokens in {summary.seconds:.1f} s "
        f"({summary.tokens_per_second:,.0f} tok/s)",
    ]
    if summary.resumed:
        parts.append(f"{summary.resumed:,} unchanged, already stored")
    if summary.empty:
        parts.append(f"{len(summary.empty):,} empty, skipped: {_names(summary.empty)}")
    if summary.unindexable:
        parts.append(
            f"{len(summary.unindexable):,} with no indexable token, skipped: "
            f"{_names(summary.unindexable)}"
        )
    if summary.pruned:
        parts.append(f"{summary.pruned:,} pruned (their files are gone)")
    parts += skipped_files(summary.skipped)
    where = visible(f"Collection {collection!r} at {db}")
    return f"{'; '.join(parts)}. {where} holds {total:,} entries."


# --------------------------------------------------------------------------- list


OUTPUTS = ("dense", "sparse", "colbert")


def _collection_row(info: CollectionInfo) -> dict[str, Any]:
    spec = info.spec
    return {
        "collection": info.name,
        "entries": info.entries,
        "model": spec.model if spec is not None else None,
        "dense_dim": spec.dense_dim if spec is not None and spec.dense else None,
        "colbert_dim": spec.colbert_dim if spec is not None and spec.colbert else None,
        "stores": [
            n for n in ("dense", "sparse", "colbert") if spec is not None and getattr(spec, n)
        ],
        "colbert_precision": spec.colbert_precision if spec is not None and spec.colbert else None,
        "colbert_pool_factor": spec.colbert_pool_factor
        if spec is not None and spec.colbert
        else None,
        "colbert_bytes_per_token": spec.colbert_bytes_per_token
        if spec is not None and spec.colbert
        else None,
    }


def collections_json(found: Sequence[CollectionInfo]) -> str:
    """``m3vdb list --json``: one object per collection."""
    return json.dumps([_collection_row(i) for i in found], indent=2, ensure_ascii=False)


def collections_table(found: Sequence[CollectionInfo]) -> str:
    """``m3vdb list``: one aligned line per collection (name, entries, model, what it stores
    at which dimensions); a collection m3vdb did not build (or built before it recorded its
    spec) shows ``?``."""
    header = ("collection", "entries", "model", "stores")
    lines = [header]
    for info in found:
        row = _collection_row(info)
        dims = {"dense": row["dense_dim"], "colbert": row["colbert_dim"]}
        stores = ", ".join(f"{n} {dims[n]}-d" if dims.get(n) else n for n in row["stores"]) or "?"
        if row["colbert_precision"] is not None:
            pool = row["colbert_pool_factor"]
            stores += (
                f" ({row['colbert_precision']}, {_bytes(row['colbert_bytes_per_token'])} B/token"
                + (f", pool {pool}" if pool > 1 else "")
                + ")"
            )
        model = visible(row["model"]) if row["model"] else "?"
        lines.append((visible(info.name), f"{info.entries:,}", model, stores))
    widths = [max(cell_width(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(pad(cell, w) for cell, w in zip(line[:-1], widths)) + "  " + line[-1]
        for line in lines
    )
