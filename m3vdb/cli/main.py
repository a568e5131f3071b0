"""``m3vdb``: index files into a vector database, search them, describe the collection.

Errors are one line that says what to do; the exit status is 2 when the caller's input or
configuration is at fault (missing model, bad filter, wrong collection...) and 1 otherwise
(the database failed). ``--verbose`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m3vdb.schemas.errors import BackendError, CollectionNotFoundError, InputError, M3VDBError

if TYPE_CHECKING:
    from m3vdb.connectors import Connector
    from m3vdb.encoder import M3Encoder

DEFAULT_DB = "m3vdb.db"
DEFAULT_COLLECTION = "m3vdb"
DEFAULT_MODEL = "BAAI/bge-m3"
MODES = ("hybrid", "dense", "sparse", "colbert")

_TARGETS_HELP = """\
database targets (--db):
  PATH.db | milvus-lite:PATH.db    Milvus Lite, embedded, a local file (default: ./m3vdb.db)
  milvus://HOST:19530              Milvus server (milvus+https:// for TLS)
  qdrant+local:PATH                Qdrant local mode, persisted in a folder
  qdrant+edge:PATH                 Qdrant edge (Qdrant's Rust engine in-process), a folder
  qdrant://HOST:6333               Qdrant server (qdrant+https:// for TLS)
  elasticsearch://HOST:9200        Elasticsearch 9.x (elasticsearch+https:// for TLS)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``m3vdb`` and its three commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="TARGET",
        help=f"database URL or Milvus Lite file (default: ./{DEFAULT_DB}, embedded)",
    )
    common.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default: {DEFAULT_COLLECTION})",
    )
    common.add_argument(
        "--model",
        default=os.environ.get("M3VDB_MODEL", DEFAULT_MODEL),
        help="hub id or local checkpoint directory (default: $M3VDB_MODEL or BAAI/bge-m3)",
    )
    common.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: the best present)")
    common.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16")
    )
    common.add_argument("--verbose", action="store_true", help="tracebacks and client logs")

    parser = argparse.ArgumentParser(
        prog="m3vdb",
        description="BGE-M3 dense + sparse + ColBERT in the vector database you already run.",
        epilog=_TARGETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser(
        "index",
        parents=[common],
        help="index .txt, .md and .jsonl files",
        description="Index files: .txt/.md (one document each, id = path relative to the "
        "directory given) and .jsonl (one {id, text, metadata} object per line). Documents "
        "already stored are skipped, so re-running after an interruption resumes.",
    )
    index.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    index.add_argument("--batch-size", type=_positive, default=32, help="documents per batch")
    index.add_argument(
        "--chunk-tokens",
        type=_positive,
        default=None,
        metavar="N",
        help="split documents into windows of N tokens (ids DOC#0, DOC#1...; metadata "
        "parent_id); default: one entry per document",
    )
    index.add_argument(
        "--chunk-overlap", type=int, default=64, metavar="N", help="tokens shared by windows"
    )
    index.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="re-encode and overwrite documents already stored",
    )
    index.add_argument("--quiet", action="store_true", help="no progress bar")

    search = commands.add_parser(
        "search", parents=[common], help="search a collection", description="Search."
    )
    search.add_argument("query")
    search.add_argument("--mode", default="hybrid", choices=MODES)
    search.add_argument("-k", type=_positive, default=10, help="number of results")
    search.add_argument(
        "--filter",
        metavar="JSON",
        help='metadata filter, e.g. \'{"lang": "en", "year": {"gte": 2020}}\'',
    )
    search.add_argument("--fusion", default="rrf", choices=("rrf", "weighted"))
    search.add_argument(
        "--no-rerank", dest="rerank", action="store_false", help="hybrid without ColBERT rerank"
    )
    search.add_argument("--json", action="store_true", help="JSON instead of a table")

    info = commands.add_parser(
        "info", parents=[common], help="what a collection stores, how, and how many"
    )
    info.add_argument("--json", action="store_true", help="JSON instead of text")
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``m3vdb`` with ``argv`` (default: the process arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    _quiet_clients(args.verbose)
    run = {"index": cmd_index, "search": cmd_search, "info": cmd_info}[args.command]
    try:
        return run(args)
    except BrokenPipeError:
        # the reader (| head) went away: not an error of ours
        sys.stdout = open(os.devnull, "w")  # the flush at exit would fail again
        return 0
    except KeyboardInterrupt:
        print(
            "m3vdb: interrupted; run the same command again to resume where it stopped",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        message, status = explain(exc)
        print(f"m3vdb: error: {message}", file=sys.stderr)
        return status


def explain(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for an error: 2 for the caller's fault, else 1."""
    if isinstance(exc, M3VDBError):
        return _one_line(str(exc)), 2 if exc.caller_fault else 1
    if isinstance(exc, OSError):
        return _one_line(f"{type(exc).__name__}: {exc}"), 1
    return (
        _one_line(f"unexpected {type(exc).__name__}: {exc} (run with --verbose for details)"),
        1,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quiet_clients(verbose: bool) -> None:
    """Keeps the terminal to our own output: database clients log failed calls with
    tracebacks, and Milvus Lite warns about pkg_resources on import."""
    if verbose:
        return
    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated")
    warnings.filterwarnings("ignore", message="Failed to obtain server version")
    for name in ("pymilvus", "milvus_lite", "qdrant_client", "httpx", "transformers"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- commands


def cmd_index(args: argparse.Namespace) -> int:
    """``m3vdb index PATH...``"""
    from m3vdb.cli import sources
    from m3vdb.cli.indexing import Chunking, index_documents
    from m3vdb.cli.render import summary_text

    files = sources.discover(args.paths)  # before loading the model: fail fast on bad paths
    total = sources.count_documents(files)
    chunking = Chunking(args.chunk_tokens, args.chunk_overlap) if args.chunk_tokens else None
    encoder = _encoder(args)
    with _connector(args, encoder, must_exist=False) as connector:
        summary = index_documents(
            connector,
            encoder,
            sources.read(files),
            batch_size=args.batch_size,
            chunking=chunking,
            resume=args.resume,
            total=total,
            show_progress=not args.quiet,
        )
        print(
            summary_text(summary, collection=args.collection, db=args.db, total=connector.count())
        )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """``m3vdb search QUERY``"""
    from m3vdb.cli.render import hits_json, hits_table
    from m3vdb.connectors import HybridOptions
    from m3vdb.schemas.filters import parse_filter

    flt = parse_filter(_filter_json(args.filter)) if args.filter else None  # before the model
    encoder = _encoder(args)
    with _connector(args, encoder, must_exist=True) as connector:
        hits = connector.search(
            args.query,
            args.k,
            mode=args.mode,
            filter=flt,
            hybrid=HybridOptions(fusion=args.fusion, rerank=args.rerank),
        )
    print(hits_json(hits) if args.json else hits_table(hits))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``m3vdb info``"""
    from m3vdb.cli.render import describe, info_text

    encoder = _encoder(args)  # the collection's expected dimensions come from the model
    with _connector(args, encoder, must_exist=True) as connector:
        info = describe(connector, args.db)
    print(json.dumps(info, indent=2) if args.json else info_text(info))
    return 0


# --------------------------------------------------------------------------- helpers


def _filter_json(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--filter is not JSON ({exc.msg} at column {exc.colno}); write it like "
            '\'{"lang": "en", "year": {"gte": 2020}}\''
        ) from exc
    if not isinstance(value, dict):
        raise InputError(f"--filter must be a JSON object, got {text!r}")
    return value


def _encoder(args: argparse.Namespace) -> M3Encoder:
    from m3vdb.encoder import M3Encoder

    model = str(args.model)
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().is_dir():
        # a path, not a hub id: say so rather than report a failed download
        raise InputError(
            f"no model directory at {model}: pass an existing checkpoint directory or a hub "
            f"id (default {DEFAULT_MODEL})"
        )
    return M3Encoder(args.model, device=args.device, dtype=args.dtype)


@contextmanager
def _connector(
    args: argparse.Namespace, encoder: M3Encoder, *, must_exist: bool
) -> Iterator[Connector]:
    """The collection, closed on exit. ``must_exist``: searching or describing a collection
    that does not exist or holds nothing is the caller's mistake (a typo in --db or
    --collection); the collection is then opened with ``create=False``, so a typo creates
    nothing."""

    from m3vdb.connectors import connect
    from m3vdb.connectors.registry import lite_path

    db, name = args.db, args.collection
    lite = lite_path(db)
    if must_exist and lite is not None and not Path(lite).exists():
        # checked before connecting: opening a Lite file creates it
        raise InputError(
            f"no database at {db}: index documents first (m3vdb index PATH... --db {db}) or "
            "pass the --db you indexed into"
        )
    try:
        connector = connect(db, collection=name, encoder=encoder, create=not must_exist)
    except CollectionNotFoundError as exc:
        raise InputError(
            f"no collection {name!r} at {db}: index into it first "
            f"(m3vdb index PATH... --collection {name}) or check --collection / --db"
        ) from exc
    except BackendError as exc:
        raise BackendError(
            f"{exc}; check --db {db} and that the database is running and reachable",
            retriable=exc.retriable,
        ) from exc
    try:
        if must_exist and connector.count() == 0:
            raise InputError(
                f"collection {name!r} at {db} holds no documents: index into it first "
                f"(m3vdb index PATH... --collection {name}) or check --collection / --db"
            )
        yield connector
    finally:
        connector.close()
