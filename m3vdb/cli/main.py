"""``m3vdb``: index files into a vector database, search them, describe or drop the collection.

Errors are one line that says what to do; the exit status is 2 when the caller's input or
configuration is at fault (missing model, bad filter, wrong collection...), 1 when the
database failed, and 130 after Ctrl-C. ``--verbose`` shows the traceback instead.

Start-up: this module imports only the standard library and the error classes, so ``m3vdb
--help`` is instant; ``info`` and ``drop`` never import torch; each command imports what it
needs when it runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from m3vdb.cli import onnx_export

if TYPE_CHECKING:
    from m3vdb.errors import M3VDBError


from m3vdb.cli.defaults import (
    DEFAULT_COLLECTION,
    DEFAULT_DB,
    DEFAULT_MODEL,
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW,
    LEGACY_DB,
    resolve_db,
)

MODES = ("hybrid", "dense", "sparse", "colbert")

_TARGETS_HELP = """\
database targets (--db):
  qdrant+edge:PATH                 Qdrant edge (Qdrant's Rust engine in-process), a folder
                                   (default: qdrant+edge:./m3vdb.qdrant, or $M3VDB_DB)
  PATH.db | milvus-lite:PATH.db    Milvus Lite, embedded, a local file
  milvus://HOST:19530              Milvus server (milvus+https:// for TLS)
  qdrant+local:PATH                Qdrant local mode, persisted in a folder
  qdrant://HOST:6333               Qdrant server (qdrant+https:// for TLS)
  elasticsearch://HOST:9200        Elasticsearch 9.x (elasticsearch+https:// for TLS)
"""


_DB_HELP = (
    f"database URL or folder (default: $M3VDB_DB, else {DEFAULT_DB}, embedded; an "
    f"existing ./{LEGACY_DB} from before is kept)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``m3vdb`` and its commands (one ``add_parser`` each)."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--db",
        metavar="TARGET",
        help=_DB_HELP,
    )
    where.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default: {DEFAULT_COLLECTION})",
    )
    where.add_argument(
        "--model",
        default=os.environ.get("M3VDB_MODEL", DEFAULT_MODEL),
        help="hub id or local checkpoint directory (default: $M3VDB_MODEL or BAAI/bge-m3)",
    )
    where.add_argument("--verbose", action="store_true", help="tracebacks and client logs")
    common = argparse.ArgumentParser(add_help=False, parents=[where])
    common.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: the best present)")
    common.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16", "int8")
    )
    common.add_argument(
        "--encoder-url",
        default=os.environ.get("M3VDB_ENCODER_URL"),
        metavar="URL",
        help="use the encoder of an 'm3vdb serve' server instead of loading the model "
        "(default: $M3VDB_ENCODER_URL; its key: $M3VDB_API_KEY)",
    )

    parser = argparse.ArgumentParser(
        prog="m3vdb",
        description="BGE-M3 dense + sparse + ColBERT in the vector database you already run.",
        epilog=_TARGETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"m3vdb {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser(
        "index",
        parents=[common],
        help="index .txt, .md, .jsonl (and PDF, HTML, DOCX) files",
        description="Index files: .txt/.md (one document each; id = the folder's name and "
        "the path below it, or a file's relative path as given), .jsonl (one {id, text, "
        "metadata} object per line) and, with m3vdb[documents], .pdf (a document per page), "
        ".html and .docx (a document per section). Every file is read and checked before "
        "anything is written (docs/cli.md). A document "
        "longer than one entry holds is stored as overlapping token windows (DOC#0, DOC#1...; "
        "metadata parent_id). Documents stored unchanged are skipped and changed ones "
        "replaced, so re-running after an edit or an interruption does only what is left.",
    )
    _add_source_options(index)
    index.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="re-encode and rewrite documents already stored unchanged",
    )
    index.add_argument(
        "--prune",
        action="store_true",
        help="delete stored documents that came from the directories given and whose file "
        "(or JSONL line) is gone",
    )
    index.add_argument(
        "--recreate",
        action="store_true",
        help="drop the collection first and index into a new one (after a model change)",
    )
    index.add_argument(
        "--colbert-fde",
        action="store_true",
        help="also store each entry's MUVERA encoding (a fixed-size vector of its ColBERT "
        "rows): --mode colbert then takes candidates by it and reranks them by exact MaxSim "
        "instead of scanning every entry (a new collection keeps it: later runs need not "
        "repeat it)",
    )
    index.add_argument(
        "--colbert-precision",
        choices=("float32", "float16", "int8", "binary"),
        default=None,
        help="how a NEW collection stores ColBERT rows (default float32; an existing one keeps "
        "its own): float16 halves the bytes; int8 and binary are Qdrant quantisations with "
        "float16 originals for the rescore, or Elasticsearch rank_vectors byte / bit "
        "(Milvus: float32 and float16 only)",
    )
    index.add_argument(
        "--colbert-pool",
        type=_positive,
        default=None,
        metavar="N",
        help="token pooling for a NEW collection: cluster each entry's ColBERT rows into about "
        "rows/N (Ward), stored as their re-normalised means (default 1: off; 2 halves the "
        "rows); queries are never pooled",
    )
    index.add_argument("--quiet", action="store_true", help="no progress bar")

    search = commands.add_parser(
        "search",
        parents=[common],
        help="search a collection",
        description="Search. The table shows one row per document (its best window); "
        "--no-group shows every window.",
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
    search.add_argument(
        "--no-group",
        dest="group",
        action="store_false",
        help="one row per window instead of one per document",
    )
    search.add_argument("--json", action="store_true", help="JSON instead of a table")

    info = commands.add_parser(
        "info",
        parents=[where],
        help="what a collection stores, how, and how many (no model loaded)",
    )
    info.add_argument("--json", action="store_true", help="JSON instead of text")

    listing = commands.add_parser(
        "list",
        help="the collections of a database: entries, model, what they store (no model loaded)",
    )
    listing.add_argument(
        "--db",
        metavar="TARGET",
        help=_DB_HELP,
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.add_argument("--verbose", action="store_true", help="tracebacks and client logs")

    drop = commands.add_parser(
        "drop",
        parents=[where],
        help="delete a collection and everything stored in it (no model loaded)",
    )
    drop.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_transfer_parsers(commands, where)
    _add_serve_parser(commands)
    onnx_export.add_parser(commands)
    return parser


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """The source and window options ``index`` and ``encode`` share."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument("--batch-size", type=_positive, default=32, help="documents per batch")
    parser.add_argument(
        "--chunk-tokens",
        type=_positive,
        default=None,
        metavar="N",
        help="split every document longer than N tokens into windows of N tokens (default: "
        f"only documents longer than one entry holds, into {DEFAULT_WINDOW}-token windows)",
    )
    parser.add_argument(
        "--chunk-overlap",
        type=_non_negative,
        default=None,
        metavar="N",
        help=f"tokens shared by consecutive windows (default {DEFAULT_OVERLAP}); needs "
        "--chunk-tokens",
    )
    parser.add_argument(
        "--no-chunk",
        action="store_true",
        help="never split: refuse a document longer than one entry holds",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out files and folders matching GLOB (.gitignore syntax, from the folder "
        "given: '*.log', 'drafts/', '/README.md'); repeatable",
    )
    parser.add_argument(
        "--skip-errors",
        action="store_true",
        help="leave out a file that cannot be read (not UTF-8, damaged, a bad JSONL line), "
        "one line each on stderr, instead of stopping; exit 0 only if something was indexed",
    )
    parser.add_argument(
        "--max-file-size",
        type=_positive,
        default=10,
        metavar="MIB",
        help="refuse a .txt/.md file, a JSONL line, or a PDF page / HTML or DOCX section "
        "larger than this (default 10 MiB)",
    )
    _add_ray_options(parser)


def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray`` and the actor pool's options (``index`` and ``encode``)."""
    ray = parser.add_argument_group("encoding on Ray (pip install 'm3vdb[ray]'; see docs/ray.md)")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="encode on a Ray actor pool: no ADDRESS starts a local Ray for the run; 'auto' "
        "or ray://HOST:10001 uses a running cluster (--model must be a hub id or a path "
        "every node can read)",
    )
    ray.add_argument(
        "--ray-actors", type=_positive, default=1, metavar="N", help="encoder actors (default 1)"
    )
    ray.add_argument(
        "--ray-gpus",
        type=_non_negative_float,
        default=0.0,
        metavar="G",
        help="GPUs per actor (default 0; 1: a GPU each, 0.5: two actors per GPU)",
    )
    ray.add_argument(
        "--ray-cpus",
        type=_non_negative_float,
        default=1.0,
        metavar="C",
        help="CPUs per actor (default 1)",
    )
    ray.add_argument(
        "--ray-batch-tokens",
        type=_positive,
        default=None,
        metavar="N",
        help="most tokens per forward pass in an actor (default: sized to the device's "
        "memory); --batch-size is the documents per actor call",
    )


def _add_transfer_parsers(commands: Any, where: argparse.ArgumentParser) -> None:
    """``encode``, ``load``, ``export`` and ``copy``: the m3vdb embedding format (Parquet)."""
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--model",
        default=os.environ.get("M3VDB_MODEL", DEFAULT_MODEL),
        help="hub id or local checkpoint directory (default: $M3VDB_MODEL or BAAI/bge-m3)",
    )
    model.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: the best present)")
    model.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16", "int8")
    )
    model.add_argument(
        "--encoder-url",
        default=os.environ.get("M3VDB_ENCODER_URL"),
        metavar="URL",
        help="use the encoder of an 'm3vdb serve' server instead of loading the model",
    )
    model.add_argument("--verbose", action="store_true", help="tracebacks and client logs")
    encode = commands.add_parser(
        "encode",
        parents=[model],
        help="encode files into an m3vdb embedding file (Parquet), no database",
        description="Encode files as 'index' does (same sources, ids and windows) into the "
        "m3vdb embedding format: OUT ending in .parquet is one file, any other OUT a folder "
        "of part files. Load it into any database later with 'm3vdb load', no model needed.",
    )
    _add_source_options(encode)
    encode.add_argument("--out", required=True, help="the .parquet file or folder to write")
    encode.add_argument(
        "--colbert-type",
        default="float32",
        choices=("float32", "float16"),
        help="element type of the ColBERT rows in the file (default: float32)",
    )
    encode.add_argument("--quiet", action="store_true", help="no progress bar")

    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db",
        metavar="TARGET",
        help=_DB_HELP,
    )
    db.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default: {DEFAULT_COLLECTION})",
    )
    db.add_argument("--batch-size", type=_positive, default=256, help="entries per batch")
    db.add_argument("--quiet", action="store_true", help="no progress bar")
    db.add_argument("--verbose", action="store_true", help="tracebacks and client logs")
    load = commands.add_parser(
        "load",
        parents=[db],
        help="write an m3vdb embedding file into a collection (no model loaded)",
        description="Write an m3vdb embedding file (or folder of part files) into a "
        "collection: a missing one is built from the file's metadata, an existing one is "
        "checked against it first (nothing is written on a mismatch).",
    )
    load.add_argument("path", metavar="FILE", help="the .parquet file or folder to read")
    export = commands.add_parser(
        "export",
        parents=[db],
        help="write everything a collection stores to an m3vdb embedding file",
    )
    export.add_argument("--out", required=True, help="the .parquet file or folder to write")
    copy = commands.add_parser(
        "copy",
        parents=[db],
        help="copy a collection into another database, no re-encoding (resumable)",
        description="Copy every entry and its stored embeddings from --db/--collection to "
        "--to/--to-collection; a re-run after an interruption skips what is already there "
        "unchanged.",
    )
    copy.add_argument("--to", required=True, metavar="TARGET", help="the destination database")
    copy.add_argument("--to-collection", help="the destination collection (default: --collection)")


def _add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the encoder over HTTP (OpenAI, TEI and native routes)",
        description="Serve BGE-M3's dense, sparse and ColBERT outputs over HTTP: OpenAI's "
        "POST /v1/embeddings, text-embeddings-inference's /embed, /embed_sparse, /embed_all, "
        "/info, /health, the native POST /encode, and Prometheus GET /metrics. Requests of "
        "all clients are batched together. Needs pip install 'm3vdb[serve]'.",
    )
    serve.add_argument(
        "--model",
        default=os.environ.get("M3VDB_MODEL", DEFAULT_MODEL),
        help="hub id or local checkpoint directory (default: $M3VDB_MODEL or BAAI/bge-m3)",
    )
    serve.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: the best present)")
    serve.add_argument(
        "--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16", "int8")
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback)"
    )
    serve.add_argument("--port", type=_positive, default=8080, help="(default: 8080)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("M3VDB_API_KEY"),
        help="require 'Authorization: Bearer KEY' on every route but /health "
        "(default: $M3VDB_API_KEY; prefer the variable: arguments show in ps)",
    )
    serve.add_argument(
        "--model-name", help="the name /info and /v1/models report (default: --model)"
    )
    serve.add_argument(
        "--max-inputs-per-request",
        type=_positive,
        default=256,
        metavar="N",
        help="texts per request (default: 256; 413 above)",
    )
    serve.add_argument(
        "--max-input-tokens",
        type=_positive,
        default=None,
        metavar="N",
        help="tokens per text, special tokens included (413 above, unless the request asks "
        "to truncate); default: the model's length",
    )
    serve.add_argument(
        "--max-pending-inputs",
        type=_positive,
        default=2048,
        metavar="N",
        help="texts queued or being encoded over all requests (default: 2048; 429 with "
        "Retry-After above)",
    )
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=2.0,
        metavar="MS",
        help="how long a batch waits for other requests to join (default: 2)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=32 * 1024 * 1024,
        metavar="N",
        help="request body size (default: 32 MiB; 413 above)",
    )
    serve.add_argument("--verbose", action="store_true", help="tracebacks and access logs")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("m3vdb")
    except PackageNotFoundError:  # run from a source tree without installing
        from m3vdb import __version__

        return __version__


def _positive(value: str) -> int:
    number = _integer(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _non_negative(value: str) -> int:
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _ray_pool(args: argparse.Namespace) -> Any:
    """The Ray actor pool ``--ray`` asks for (ray itself checked first: one clear line when it
    is not installed)."""
    from m3vdb.cli.model import check_model_path
    from m3vdb.errors import InputError
    from m3vdb.ray.encode import ActorPool, ray_module

    ray_module()
    if args.encoder_url:
        raise InputError(
            "--ray encodes in Ray actors that load --model themselves: drop --encoder-url"
        )
    check_model_path(args.model)
    return ActorPool(
        concurrency=args.ray_actors,
        num_gpus=args.ray_gpus,
        num_cpus=args.ray_cpus,
        batch_size=args.batch_size,
        token_budget=args.ray_batch_tokens,
        device=args.device,
        dtype=args.dtype,
    )


def _corpus(args: argparse.Namespace) -> Any:
    """The sources of ``index`` / ``encode``, every file read and checked (m3vdb.indexing's
    Corpus), with the command line's size bound, excludes and skip policy."""
    from m3vdb.indexing import Corpus

    return Corpus.from_paths(
        args.paths,
        max_file_bytes=args.max_file_size * 2**20,
        exclude=args.exclude,
        skip_errors=args.skip_errors,
        on_skip=_print_skip,
    )


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``m3vdb`` with ``argv`` (default: the process arguments); returns the exit status."""
    _quiet_warnings()
    args = build_parser().parse_args(argv)
    _quiet_clients(args.verbose)
    if hasattr(args, "db"):
        args.db, notice = resolve_db(args.db)
        if notice:
            print(f"m3vdb: {notice}", file=sys.stderr)
    run = COMMANDS[args.command]
    try:
        return run(args)
    except BrokenPipeError:
        # the reader (| head) went away: not an error of ours
        sys.stdout = open(os.devnull, "w")  # the flush at exit would fail again
        return 0
    except KeyboardInterrupt:
        print("m3vdb: interrupted; nothing was half-written", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        message, status = explain(exc)
        print(f"m3vdb: error: {message}", file=sys.stderr)
        return status


def explain(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for an error: 2 for the caller's fault, else 1."""
    from m3vdb.errors import M3VDBError

    if isinstance(exc, M3VDBError):
        return _one_line(str(exc)), 2 if exc.caller_fault else 1
    if isinstance(exc, OSError):
        return _one_line(f"{type(exc).__name__}: {exc}"), 1
    return (
        _one_line(f"unexpected {type(exc).__name__}: {exc} (run with --verbose for details)"),
        1,
    )


def _one_line(text: str) -> str:
    """One line with every control character made visible (messages quote data: ids, file
    names, texts): ``render.visible``."""
    from m3vdb.cli.render import visible

    return visible(" ".join(text.split()))


def _quiet_warnings() -> None:
    """Third-party deprecation warnings are not the user's business: Milvus Lite 2.5 imports
    pkg_resources (deprecated by setuptools) when pymilvus opens a .db file."""
    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="milvus_lite")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pymilvus")


def _quiet_clients(verbose: bool) -> None:
    """Keeps the terminal to our own output: database clients log failed calls with
    tracebacks."""
    if verbose:
        return
    warnings.filterwarnings("ignore", message="Failed to obtain server version")
    # Milvus Lite logs to the root logger (e.g. "Open ... failed" before the error we report)
    logging.getLogger().setLevel(logging.CRITICAL)
    for name in ("pymilvus", "milvus_lite", "qdrant_client", "httpx", "transformers"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- commands


def _chunking(args: argparse.Namespace) -> Any:
    """The Chunking ``index``'s options ask for (None: --no-chunk), checked before anything
    is read."""
    from m3vdb.errors import InputError
    from m3vdb.indexing.chunking import Chunking, check_window, default_overlap

    if args.chunk_overlap is not None and args.chunk_tokens is None:
        raise InputError(
            f"--chunk-overlap {args.chunk_overlap} needs --chunk-tokens N (the window it "
            f"overlaps); e.g. --chunk-tokens {DEFAULT_WINDOW} --chunk-overlap "
            f"{args.chunk_overlap}"
        )
    if args.no_chunk:
        if args.chunk_tokens is not None:
            raise InputError("--no-chunk and --chunk-tokens contradict each other: give one")
        return None
    if args.chunk_tokens is None:
        return Chunking()
    overlap = args.chunk_overlap
    if overlap is None:
        overlap = default_overlap(args.chunk_tokens)
    check_window(args.chunk_tokens, overlap)
    return Chunking(args.chunk_tokens, overlap, automatic=False)


def cmd_index(args: argparse.Namespace) -> int:
    """``m3vdb index PATH...``: ``m3vdb.indexing.run`` on the collection, with the command
    line's words for what goes wrong."""
    from m3vdb.cli import database
    from m3vdb.cli.model import check_device
    from m3vdb.cli.render import summary_text
    from m3vdb.errors import M3VDBError
    from m3vdb.indexing import IndexReport, run
    from m3vdb.indexing.chunking import check_chunking
    from m3vdb.indexing.run import check_plan

    chunking = _chunking(args)
    pool = _ray_pool(args) if args.ray is not None else None
    # every file read and checked, before the model is loaded and before anything is written
    corpus = _corpus(args)
    check_plan(corpus, chunking=chunking, prune=args.prune)
    spec = _spec(args)
    if args.colbert_fde:
        from dataclasses import replace

        from m3vdb.schemas.spec import ColbertFde

        spec = replace(spec, colbert_fde=ColbertFde())
    if args.colbert_precision is not None or args.colbert_pool is not None:
        from dataclasses import replace

        spec = replace(
            spec,
            colbert_precision=args.colbert_precision or spec.colbert_precision,
            colbert_pool_factor=args.colbert_pool or spec.colbert_pool_factor,
        )
    if pool is None:  # (Ray: the actors' device, on their nodes)
        check_device(args.device)  # before anything is written: the model loads on first use
    if chunking is not None:
        check_chunking(chunking, spec.max_colbert_rows + 1)

    @functools.cache
    def encoder() -> Any:
        # loaded on first use: a re-run with nothing to encode never loads the model
        loaded = _load_encoder(args)
        _check_dims(loaded, spec, args)
        return loaded

    def prepare() -> Any:
        if pool is None:  # (Ray: the actors load the model)
            encoder()  # a new collection is created only once the model has loaded
        return spec

    report = IndexReport()
    try:
        # a new collection is created only after the model loaded, and dropped again (with
        # an embedded database's new file or folder) when the run fails before its first write
        with database.opened_for_index(
            args.db,
            args.collection,
            spec,
            prepare=prepare,
            written=lambda: report.indexed > 0,
            recreate=args.recreate,
        ) as connector:
            if pool is not None:
                from m3vdb.ray import index_corpus

                index_corpus(
                    connector,
                    corpus,
                    model=args.model,
                    target=args.db,
                    chunking=chunking,
                    resume=args.resume,
                    prune=args.prune,
                    pool=pool,
                    address=args.ray,
                    show_progress=not args.quiet,
                    report=report,
                )
            else:
                run(
                    connector,
                    corpus,
                    encoder=encoder,
                    chunking=chunking,
                    resume=args.resume,
                    prune=args.prune,
                    batch_size=args.batch_size,
                    show_progress=not args.quiet,
                    report=report,
                )
            total = connector.count()
    except KeyboardInterrupt:
        print(
            f"m3vdb: interrupted after {report.indexed:,} documents were written "
            "completely (none half-written); run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except (M3VDBError, OSError) as exc:
        if report.indexed:
            raise _after(exc, report.indexed) from exc
        raise
    print(summary_text(report, collection=args.collection, db=args.db, total=total))
    if corpus.hidden:
        print(f"({corpus.hidden:,} hidden files and folders, names starting with '.', not read)")
    if corpus.unread_files and report.indexed + report.resumed == 0:
        return 2  # --skip-errors, and nothing of what was given is in the collection
    return 0


def _print_skip(skipped: Any) -> None:
    """--skip-errors: one line per file left out by an error, as it is found."""
    print(f"m3vdb: skipped {_one_line(skipped.reason)}", file=sys.stderr)


def _after(exc: Exception, written: int) -> M3VDBError:
    """``exc`` with what a failure mid-run left behind: complete documents only."""
    from m3vdb.errors import BackendError, InputError, M3VDBError

    note = (
        f"{written:,} documents were written completely before this error; fix it and run "
        "the same command again: they are skipped"
    )
    if isinstance(exc, BackendError):
        return BackendError(f"{exc} ({note})", retriable=exc.retriable)
    if isinstance(exc, M3VDBError) and not exc.caller_fault:
        return BackendError(f"{exc} ({note})")
    return InputError(f"{exc} ({note})")


def _check_dims(encoder: Any, spec: Any, args: argparse.Namespace) -> None:
    from m3vdb.errors import InputError

    if (encoder.dense_dim, encoder.colbert_dim) != (spec.dense_dim, spec.colbert_dim):
        raise InputError(
            f"--model {args.model} produces {encoder.dense_dim}-d vectors but its config.json "
            f"says {spec.dense_dim}: the checkpoint is inconsistent"
        )


def cmd_search(args: argparse.Namespace) -> int:
    """``m3vdb search QUERY``"""
    from m3vdb.cli import database
    from m3vdb.cli.render import hits_json, hits_table, rows, score_label
    from m3vdb.connectors.base import HybridOptions
    from m3vdb.errors import InputError
    from m3vdb.schemas.filters import parse_filter

    if not args.query.strip():
        raise InputError("the query is empty: give a text to search for, e.g. m3vdb search 'flood'")
    flt = parse_filter(_filter_json(args.filter)) if args.filter else None  # before the model
    hybrid = HybridOptions(fusion=args.fusion, rerank=args.rerank)
    spec = _spec(args)
    with database.opened(args.db, args.collection, spec, must_exist=True) as connector:
        encoder = _load_encoder(args)
        _check_dims(encoder, spec, args)
        query = encoder.encode([args.query])[0]
        label = score_label(args.mode, rerank=args.rerank, fusion=args.fusion, spec=spec)
        # grouped: one row per document, its best window (the Collection fetches enough)
        hits = connector.search(
            query, args.k, mode=args.mode, filter=flt, hybrid=hybrid, group=args.group
        )
        result = rows(hits, label, group=args.group, k=args.k)
    print(hits_json(result) if args.json else hits_table(result))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``m3vdb info``: no model loaded; the collection is described as it was built (its
    recorded spec), whatever --model says. A collection built before m3vdb recorded specs is
    read with --model's dimensions (from its config.json)."""
    from m3vdb.cli import database
    from m3vdb.cli.render import describe, info_text

    with database.opened_as_built(args.db, args.collection, args.model) as connector:
        info = describe(connector, args.db)
    print(json.dumps(info, indent=2) if args.json else info_text(info))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``m3vdb list``: every collection of --db, no model loaded."""
    from m3vdb.cli import database
    from m3vdb.cli.render import collections_json, collections_table

    found = database.collections(args.db)
    if args.json:
        print(collections_json(found))
    elif not found:
        print(f"no collections at {args.db}")
    else:
        print(collections_table(found))
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    """``m3vdb drop``: asks first unless --yes; no model loaded."""
    from m3vdb.cli import database
    from m3vdb.cli.render import visible
    from m3vdb.errors import InputError

    what = visible(f"collection {args.collection!r} at {args.db}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError(f"m3vdb drop deletes {what} and all it holds: pass --yes to confirm")
        answer = input(f"Delete {what} and everything stored in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    if database.drop(args.db, args.collection):
        print(f"dropped {what}")
        return 0
    raise InputError(f"no {what}: nothing to drop (check --db / --collection)")


def cmd_serve(args: argparse.Namespace) -> int:
    """``m3vdb serve``: one encoder for many processes, over HTTP."""
    from m3vdb.cli.model import load_encoder
    from m3vdb.serve import ServeConfig, run_server

    config = ServeConfig(  # checked before the model loads
        model_name=args.model_name or str(args.model),
        api_key=args.api_key,  # '' (flag or $M3VDB_API_KEY) is refused, not 'no key'
        max_inputs_per_request=args.max_inputs_per_request,
        max_input_tokens=args.max_input_tokens,
        max_pending_inputs=args.max_pending_inputs,
        max_wait_s=args.max_wait_ms / 1000,
        max_body_bytes=args.max_body_bytes,
    )
    encoder = load_encoder(args.model, device=args.device, dtype=args.dtype)
    print(serve_banner(encoder, config.model_name, args.host, args.port), file=sys.stderr)
    run_server(
        encoder,
        config,
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
    )
    return 0


def serve_banner(encoder: Any, model_name: str, host: str, port: int) -> str:
    """The one line ``m3vdb serve`` prints at start: where, which model, how it runs (runtime,
    precision, the int8 kernel measured at load) and the routes."""
    how = f"{getattr(encoder, 'runtime', 'torch')} {getattr(encoder, 'precision', '?')}"
    choice = getattr(encoder, "int8_choice", None)
    if choice is not None:
        how += f", int8 kernel {choice.describe()}"
    return (
        f"m3vdb serve: {model_name} ({how}) on http://{host}:{port}; routes /v1/embeddings "
        "/v1/models (OpenAI), /embed /embed_sparse /embed_all /tokenize /info (TEI), /encode, "
        "/health, /metrics"
    )


def _spec(args: argparse.Namespace) -> Any:
    """The IndexSpec of the model: from its config.json, or from the server's /info with
    --encoder-url (no model here)."""
    from m3vdb.cli.model import spec_for_model

    if args.encoder_url:
        from m3vdb.schemas.spec import IndexSpec

        return IndexSpec.for_encoder(_remote(args.encoder_url))
    return spec_for_model(args.model)


def _load_encoder(args: argparse.Namespace) -> Any:
    """The encoder: a served one with --encoder-url, else the model loaded here."""
    from m3vdb.cli.model import load_encoder

    if args.encoder_url:
        return _remote(args.encoder_url)
    return load_encoder(args.model, device=args.device, dtype=args.dtype)


@functools.cache
def _remote(url: str) -> Any:
    from m3vdb.remote import RemoteEncoder

    return RemoteEncoder(url)


def cmd_encode(args: argparse.Namespace) -> int:
    """``m3vdb encode PATH... --out OUT``: the entries ``index`` would store, to a file."""
    from m3vdb.cli.model import check_device
    from m3vdb.formats.transfer import encode

    chunking = _chunking(args)
    pool = _ray_pool(args) if args.ray is not None else None
    corpus = _corpus(args)
    if not args.encoder_url and pool is None:
        check_device(args.device)
    if pool is not None:
        from m3vdb.ray import encode_corpus

        report = encode_corpus(
            corpus,
            args.out,
            model=args.model,
            spec=_spec(args),
            chunking=chunking,
            colbert_type=args.colbert_type,
            pool=pool,
            address=args.ray,
            show_progress=not args.quiet,
        )
    else:
        report = encode(
            corpus,
            args.out,
            encoder=lambda: _load_encoder(args),
            chunking=chunking,
            colbert_type=args.colbert_type,
            batch_size=args.batch_size,
            show_progress=not args.quiet,
        )
    skipped = len(report.empty) + len(report.unindexable)
    print(
        f"encoded {report.indexed:,} documents ({report.entries:,} entries, {report.split:,} "
        f"split into windows, {skipped:,} skipped) into {args.out} in {report.seconds:.1f} s"
    )
    from m3vdb.cli.render import skipped_files

    for line in skipped_files(corpus.skipped):
        print(line)
    if corpus.unread_files and not report.indexed:
        return 2  # --skip-errors, and nothing of what was given was encoded
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    """``m3vdb load FILE``: no model loaded."""
    from m3vdb.formats.transfer import load

    report = load(
        args.path,
        args.db,
        args.collection,
        batch_size=args.batch_size,
        show_progress=not args.quiet,
    )
    print(
        f"loaded {report.written:,} entries from {args.path} into collection "
        f"{args.collection!r} at {args.db} in {report.seconds:.1f} s"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``m3vdb export --out OUT``: no model loaded."""
    from m3vdb.cli.database import opened
    from m3vdb.formats.transfer import export

    with opened(args.db, args.collection, None, must_exist=True):
        pass  # the command line's words for a missing or empty collection
    report = export(
        args.db,
        args.collection,
        args.out,
        batch_size=args.batch_size,
        show_progress=not args.quiet,
    )
    print(
        f"exported {report.written:,} entries of collection {args.collection!r} at {args.db} "
        f"to {args.out} in {report.seconds:.1f} s"
    )
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    """``m3vdb copy --to TARGET``: no model loaded; resumable."""
    from m3vdb.cli.database import opened
    from m3vdb.formats.transfer import TransferReport, copy

    to_collection = args.to_collection or args.collection
    with opened(args.db, args.collection, None, must_exist=True):
        pass
    report = TransferReport()
    try:
        copy(
            args.db,
            args.collection,
            args.to,
            to_collection,
            batch_size=args.batch_size,
            show_progress=not args.quiet,
            report=report,
        )
    except KeyboardInterrupt:
        print(
            f"m3vdb: interrupted after {report.written:,} entries were copied (none "
            "half-written); run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"copied {report.written:,} entries ({report.skipped:,} already there unchanged) from "
        f"{args.db} {args.collection!r} to {args.to} {to_collection!r} in {report.seconds:.1f} s"
    )
    return 0


# The subcommands: one entry each (a new command adds its parser above and a line here).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "index": cmd_index,
    "search": cmd_search,
    "info": cmd_info,
    "list": cmd_list,
    "drop": cmd_drop,
    "encode": cmd_encode,
    "load": cmd_load,
    "export": cmd_export,
    "copy": cmd_copy,
    "serve": cmd_serve,
    "export-onnx": onnx_export.run,
}


# --------------------------------------------------------------------------- helpers


def _filter_json(text: str) -> Any:
    from m3vdb.errors import InputError

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
