"""The first hour on every embedded engine, through the console script, as a user runs it.

For each engine (Milvus Lite ``PATH.db``, Qdrant edge ``qdrant+edge:DIR``, Qdrant local mode
``qdrant+local:DIR``), in a fresh database each time, this runs ``m3vdb`` as a subprocess:

    m3vdb index notes/ --db TARGET --quiet
    m3vdb search QUERY --db TARGET --mode dense | sparse | colbert | hybrid
    m3vdb info --db TARGET ; m3vdb list --db TARGET ; m3vdb drop --db TARGET --yes

and records the wall time of each command (process start, imports and model load included,
as the user waits for them) and the database's size on disk after ``index``. Engines are
rotated across repetitions (run r starts with engine r mod 3) so that a noisy neighbour
does not always hit the same one; the table gives the median and the min..max of each step.

The folder (``notes/``, built once, deterministic): ``--docs`` Markdown files whose lengths
spread log-uniformly over 16..1,000 tokens (``bench/corpus.py``, multilingual sentences), plus
``--long`` long ones of 3,000..9,000 tokens that ``index`` stores as 512-token windows.

The model: by default a "wide" random checkpoint built by ``tests/checkpoint_factory.py``
with BGE-M3's output width (hidden 1024, so dense 1024-d and one 1024-d ColBERT row per
token, as the real model gives) but ONE transformer layer instead of 24 and the factory's
1,000-piece tokenizer. The databases then store exactly what they would for BGE-M3 (the
bytes per token are the same), while encoding costs a few percent of the real model's: the
differences between rows are the engines', not the model's. The tiny test checkpoint (32-d)
would understate every engine's work 32-fold; the real architecture (24 layers) would make
``index`` mostly model time on 2 CPU cores. ``--model DIR`` runs any other checkpoint.

    python bench/first_hour.py                               # 3 repetitions, every engine
    python bench/first_hour.py --repeats 1 --docs 50 --long 2  # a quick look

Results: a Markdown table on stdout and ``--json`` (default ``bench/results/first_hour.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # corpus.py
sys.path.insert(0, str(HERE.parent / "tests"))  # checkpoint_factory.py

ENGINES = {
    # name: (target for --db, the path(s) it creates, relative to the run folder)
    "milvus-lite": "fh-milvus.db",
    "qdrant-edge": "qdrant+edge:fh-edge",
    "qdrant-local": "qdrant+local:fh-local",
}
NAMES = {
    "milvus-lite": "Milvus Lite 2.5 (`PATH.db`)",
    "qdrant-edge": "Qdrant edge 0.9 (`qdrant+edge:DIR`)",
    "qdrant-local": "Qdrant local mode (`qdrant+local:DIR`)",
}
MODES = ("dense", "sparse", "colbert", "hybrid")
STEPS = ("index", *(f"search {m}" for m in MODES), "info", "list", "drop")
QUERY = "AI transforms global society"


def build_model(path: Path) -> Path:
    """The wide one-layer checkpoint (see the module docstring); built once."""
    if (path / "config.json").exists():
        return path
    from checkpoint_factory import build_checkpoint

    return build_checkpoint(
        path, hidden_size=1024, num_layers=1, num_heads=16, intermediate_size=1024
    )


def build_folder(path: Path, model: Path, *, docs: int, long: int) -> dict[str, int]:
    """``notes/``: ``docs`` short-to-medium files and ``long`` long ones; built once."""
    from corpus import make_corpus
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))

    def count(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    marker = path / ".complete"
    if not marker.exists():
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        short = make_corpus(docs, count, min_tokens=16, max_tokens=1000, seed=1)
        longer = make_corpus(long, count, min_tokens=3000, max_tokens=9000, seed=2)
        for i, text in enumerate(short):
            (path / f"note-{i:04d}.md").write_text(f"# Note {i}\n\n{text}\n", encoding="utf-8")
        for i, text in enumerate(longer):
            (path / f"long-{i:02d}.txt").write_text(text + "\n", encoding="utf-8")
        marker.write_text("")
    files = sorted(p for p in path.glob("*.*") if not p.name.startswith("."))
    lengths = [count(p.read_text(encoding="utf-8")) for p in files]
    return {
        "files": len(lengths),
        "tokens": sum(lengths),
        "over_1024_tokens": sum(n > 1024 for n in lengths),
        "bytes": sum(p.stat().st_size for p in files),
    }


def _paths_of(root: Path, target: str) -> list[Path]:
    """What a target keeps on disk: its file or folder and anything named after it (Milvus
    Lite keeps a lock file beside the .db)."""
    name = target.split(":", 1)[1] if ":" in target else target
    return [p for p in root.iterdir() if p.name.lstrip(".").startswith(name)]


def _size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_blocks * 512
        else:
            total += sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
    return total


#: Seconds a step may take before it is recorded as "no answer" and killed (--step-timeout).
STEP_TIMEOUT_S = 300.0


def _m3vdb(root: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    """Runs ``m3vdb ARGS`` in ``root``; its wall time and stdout, or (inf, "") when it gave
    no answer within STEP_TIMEOUT_S (its process group is killed: Milvus Lite's server is a
    child). Any other failure stops the bench."""
    m3vdb = shutil.which("m3vdb", path=str(Path(sys.executable).parent)) or "m3vdb"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [m3vdb, *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        print(f"  m3vdb {' '.join(args)}: no answer in {STEP_TIMEOUT_S:.0f} s", file=sys.stderr)
        return math.inf, ""
    seconds = time.perf_counter() - start
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if done.returncode != 0:
        raise SystemExit(f"m3vdb {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def one_run(
    root: Path, engine: str, env: dict[str, str], modes: tuple[str, ...] = MODES
) -> dict[str, float]:
    """The first hour once on ``engine``, from an empty database."""
    target = ENGINES[engine]
    for path in _paths_of(root, target):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    db = ["--db", target]
    out: dict[str, float] = {}
    out["index"], summary = _m3vdb(root, env, "index", "notes", *db, "--quiet")
    out["disk_bytes"] = _size(_paths_of(root, target))
    for mode in modes:
        out[f"search {mode}"], hits = _m3vdb(root, env, "search", QUERY, *db, "--mode", mode)
        if not hits.strip() and out[f"search {mode}"] != math.inf:
            raise SystemExit(f"search --mode {mode} on {engine} printed nothing")
    out["info"], _ = _m3vdb(root, env, "info", *db)
    out["list"], _ = _m3vdb(root, env, "list", *db)
    out["drop"], _ = _m3vdb(root, env, "drop", *db, "--yes")
    print(f"  {engine}: {summary.strip().splitlines()[-1]}", file=sys.stderr)
    for path in _paths_of(root, target):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return out


def baseline(root: Path, env: dict[str, str], model: Path) -> float:
    """What every ``search`` pays before any database: Python, m3vdb and torch imported, the
    model loaded, one query encoded (no database client imported)."""
    code = (
        f"from m3vdb import M3Encoder; M3Encoder({str(model)!r}).encode([{QUERY!r}], max_length=64)"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True)
    return time.perf_counter() - start


def _cell(values: list[float]) -> str:
    if math.inf in values:
        answered = sum(v != math.inf for v in values)
        return f"no answer in {STEP_TIMEOUT_S:.0f} s ({answered}/{len(values)} answered)"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.1f}"
    return f"{med:.1f} ({min(values):.1f}..{max(values):.1f})"


def _total(values: list[float]) -> str:
    if math.inf in values:
        return f"> {STEP_TIMEOUT_S:.0f} s (a step gave no answer)"
    return _cell(values)


def table(runs: dict[str, list[dict[str, float]]], base: list[float]) -> str:
    engines = [e for e in ENGINES if runs.get(e)]
    lines = [
        "| step (s, median (min..max)) | " + " | ".join(NAMES[e] for e in engines) + " |",
        "|---|" + "---|" * len(engines),
    ]
    for step in STEPS:
        cells = [
            _cell([r[step] for r in runs[e]]) if step in runs[e][0] else "not run" for e in engines
        ]
        lines.append(f"| `{step}` | " + " | ".join(cells) + " |")
    totals = [_total([sum(r.get(s, 0.0) for s in STEPS) for r in runs[e]]) for e in engines]
    lines.append("| **whole first hour** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    sizes = [
        f"{statistics.median(r['disk_bytes'] for r in runs[e]) / 2**20:,.0f} MiB" for e in engines
    ]
    lines.append("| on disk after `index` | " + " | ".join(sizes) + " |")
    lines.append(
        f"\nNo database (Python + torch + model load + one query encoded): {_cell(base)} s, "
        "inside every `index` and `search` figure."
    )
    return "\n".join(lines)


def main() -> None:
    global STEP_TIMEOUT_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/tmp/m3vdb-first-hour", help="work folder")
    parser.add_argument("--model", help="checkpoint (default: the wide one-layer one)")
    parser.add_argument("--docs", type=int, default=300, help="short-to-medium files")
    parser.add_argument("--long", type=int, default=8, help="files of 3,000-9,000 tokens")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--step-timeout", type=float, default=STEP_TIMEOUT_S, help="seconds")
    parser.add_argument("--json", default=str(HERE / "results" / "first_hour.json"))
    args = parser.parse_args()
    STEP_TIMEOUT_S = args.step_timeout

    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    model = Path(args.model).resolve() if args.model else build_model(root / "model-wide")
    folder = build_folder(root / "notes", model, docs=args.docs, long=args.long)
    env = {**os.environ, "M3VDB_MODEL": str(model), "TQDM_DISABLE": "1"}
    print(f"folder: {folder}", file=sys.stderr)

    runs: dict[str, list[dict[str, float]]] = {e: [] for e in args.engines}
    base: list[float] = []
    started = time.time()
    for rep in range(args.repeats):
        order = args.engines[rep % len(args.engines) :] + args.engines[: rep % len(args.engines)]
        base.append(baseline(root, env, model))
        for engine in order:
            load = os.getloadavg()[0]
            run = one_run(root, engine, env, tuple(args.modes))
            run["load_before"] = load
            runs[engine].append(run)
            print(f"rep {rep} {engine}: {json.dumps(run)}", file=sys.stderr)

    out = {
        "folder": folder,
        "model": str(model),
        "repeats": args.repeats,
        "seconds": time.time() - started,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "baseline_s": base,
        "runs": runs,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(table(runs, base))
    print(
        f"\n{folder['files']} files, {folder['tokens']:,} tokens "
        f"({folder['over_1024_tokens']} over 1,024), {args.repeats} repetitions, "
        f"{out['seconds']:.0f} s in all",
    )


if __name__ == "__main__":
    main()
