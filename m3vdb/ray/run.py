"""``m3vdb index --ray`` and ``m3vdb encode --ray``: the indexing job with its encoding on a
Ray actor pool. The driver reads the sources, decides what needs encoding (resume by
content), streams those documents into Ray's object store, and writes what comes back:

- ``encode_corpus``: into the m3vdb embedding format (Parquet), through the driver;
- ``index_corpus``: into a collection, through the driver for an embedded engine (a Milvus
  Lite file, a Qdrant local or edge folder: one process may hold it) and from the workers
  through :class:`~m3vdb.ray.sink.CollectionDatasink` for a database server.

Either way the driver holds one block at a time, never the corpus or its embeddings.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

from m3vdb.connectors.base import Connector
from m3vdb.errors import M3VDBError
from m3vdb.formats.table import FormatInfo, from_record_batch
from m3vdb.indexing.chunking import DEFAULT_CHUNKING, Chunking, check_chunking
from m3vdb.indexing.interrupts import InterruptGuard
from m3vdb.indexing.pipeline import (
    IndexReport,
    pending_documents,
    prune_folders,
    refuse_bookkeeping_keys,
    write_encoded,
)
from m3vdb.indexing.sources import Corpus
from m3vdb.ray.encode import (
    ActorPool,
    documents_dataset,
    encode_dataset,
    iter_tables,
    ray_module,
    split_batch,
)
from m3vdb.schemas.data import Document
from m3vdb.schemas.spec import IndexSpec

#: ``--ray`` without an address: a local Ray started for the run.
LOCAL = "local"


@contextmanager
def ray_session(
    address: str | None = None, *, num_cpus: int | None = None, show_progress: bool = True
) -> Iterator[Any]:
    """Ray for one run: the session already initialised in this process if there is one
    (left running), else a new local Ray (``address`` None or ``"local"``) or a connection
    to a running cluster (``"auto"``, ``"ray://HOST:10001"``, ``"HOST:6379"``), shut down
    at the end. ``show_progress=False`` turns Ray Data's progress bars off."""
    ray = ray_module()
    context = ray.data.DataContext.get_current()
    before, context.enable_progress_bars = context.enable_progress_bars, show_progress
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    if not show_progress:  # Ray Data's INFO lines are progress too
        data_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # "only received 1 input(s)": a corpus smaller than a block per actor
            warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors")
            if ray.is_initialized():
                yield ray
            else:
                with _started(ray, address, num_cpus):
                    yield ray
    finally:
        context.enable_progress_bars = before
        data_log.setLevel(level)


@contextmanager
def _started(ray: Any, address: str | None, num_cpus: int | None) -> Iterator[None]:
    ray.init(
        address=None if address in (None, LOCAL) else address,
        num_cpus=num_cpus if address in (None, LOCAL) else None,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def is_embedded(target: Any) -> bool:
    """True for a target only one process may open: a Milvus Lite file, a Qdrant local or
    edge folder, or a client object (it lives in this process)."""
    from m3vdb.connectors.registry import lite_path

    if not isinstance(target, str):
        return True
    return lite_path(target) is not None or target.startswith(
        ("qdrant+local:", "qdrant+memory:", "qdrant+edge:")
    )


@contextmanager
def _unwrapped() -> Iterator[None]:
    """An m3vdb error raised in an actor or a write task reaches the caller as itself (Ray
    wraps it in its own exception types)."""
    try:
        yield
    except M3VDBError:
        raise
    except Exception as exc:
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, M3VDBError):
                raise cause from exc
            cause = getattr(cause, "cause", None) or cause.__cause__
        raise


def index_corpus(
    collection: Connector,
    corpus: Corpus,
    *,
    model: str,
    target: Any = None,
    options: Any = None,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    resume: bool = True,
    prune: bool = False,
    pool: ActorPool | None = None,
    writer: Literal["auto", "driver", "workers"] = "auto",
    address: str | None = None,
    show_progress: bool = True,
    report: IndexReport | None = None,
) -> IndexReport:
    """Indexes ``corpus`` into the open ``collection`` with the encoding on Ray: the same
    entries, ids, windows, resume and report as :func:`m3vdb.indexing.run`.

    Args:
        collection: the collection, open in this process (the driver); documents stored
            unchanged are found through it and never sent to Ray.
        corpus: the documents (``Corpus.from_paths`` reads and checks the files first).
        model: the checkpoint every actor loads (a hub id, or a path on every node).
        target: the database ``collection`` lives in (a URL), for ``writer="workers"``.
        options: the backend's options, for the workers' connections.
        writer: who writes: ``"driver"`` (every encoded block comes back to this process),
            ``"workers"`` (a :class:`~m3vdb.ray.sink.CollectionDatasink`: a server target
            only), ``"auto"``: the workers for a database server, the driver for an embedded
            engine.
        address: the Ray to use (see :func:`ray_session`).
        show_progress: Ray Data's progress bars.
        report: filled as the run goes (the counts survive an error or Ctrl-C).
    """
    pool = pool or ActorPool()
    report = report if report is not None else IndexReport()
    if writer == "auto":
        writer = "driver" if target is None or is_embedded(target) else "workers"
    if writer == "workers" and (target is None or is_embedded(target)):
        from m3vdb.errors import InputError

        raise InputError(
            f"{target!r} is an embedded engine (one process holds it): its writes go through "
            "the driver; write from the workers only into a database server"
        )
    if chunking is not None:
        check_chunking(chunking, collection.spec.max_colbert_rows + 1)
    info = _info(collection.spec)
    start = time.perf_counter()
    with ray_session(address, show_progress=show_progress), InterruptGuard() as guard, _unwrapped():
        todo = pending_documents(
            collection,
            corpus.documents(),
            batch_size=max(pool.batch_size, 256),
            chunking=chunking,
            resume=resume,
            guard=guard,
            report=report,
        )
        docs = documents_dataset(todo, rows_per_block=pool.batch_size)
        if docs is not None:
            encoded = encode_dataset(docs, model=model, info=info, chunking=chunking, pool=pool)
            if writer == "workers":
                from m3vdb.ray.sink import CollectionDatasink

                name = str(collection.collection)
                sink = CollectionDatasink(str(target), name, info, options=options)
                encoded.write_datasink(sink)
                _add(report, sink.report)
                sink.raise_error()
            else:
                for table in iter_tables(encoded):
                    entries, accounting = split_batch(table, info)
                    write_encoded(
                        collection,
                        list(from_record_batch(entries)),
                        unindexable=accounting.unindexable,
                        tokens=accounting.tokens,
                        guard=guard,
                        report=report,
                    )
                    report.seconds = time.perf_counter() - start
        if prune:
            report.pruned = prune_folders(collection, corpus.folders, set(corpus.ids or ()), guard)
    report.seconds = time.perf_counter() - start
    return report


def encode_corpus(
    corpus: Corpus,
    out: str | os.PathLike[str],
    *,
    model: str,
    spec: IndexSpec,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    colbert_type: Literal["float16", "float32"] = "float32",
    pool: ActorPool | None = None,
    address: str | None = None,
    show_progress: bool = True,
    report: IndexReport | None = None,
) -> IndexReport:
    """Encodes ``corpus`` on Ray into an m3vdb embedding dataset at ``out`` (as
    :func:`m3vdb.formats.transfer.encode`: the entries ``m3vdb.index`` would store in a new
    collection of ``spec``, blank and unindexable documents reported). The encoded blocks
    stream back to the driver, which writes them (one file or a folder of parts)."""
    from m3vdb.formats.parquet import EmbeddingWriter

    pool = pool or ActorPool()
    report = report if report is not None else IndexReport()
    spec = replace(spec, colbert_precision=colbert_type)
    if chunking is not None:
        check_chunking(chunking, spec.max_colbert_rows + 1)
    info = _info(spec)
    start = time.perf_counter()
    with (
        ray_session(address, show_progress=show_progress),
        _unwrapped(),
        EmbeddingWriter(out, info) as writer,
    ):
        docs = documents_dataset(_non_blank(corpus, report), rows_per_block=pool.batch_size)
        if docs is not None:
            encoded = encode_dataset(docs, model=model, info=info, chunking=chunking, pool=pool)
            for table in iter_tables(encoded):
                entries, accounting = split_batch(table, info)
                writer.write_batch(entries)
                report.indexed += accounting.indexed
                report.split += accounting.split
                report.entries += entries.num_rows
                report.tokens += accounting.tokens
                report.unindexable += accounting.unindexable
                report.seconds = time.perf_counter() - start
    report.seconds = time.perf_counter() - start
    return report


def _non_blank(corpus: Corpus, report: IndexReport) -> Iterator[Document]:
    for doc in corpus.documents():
        refuse_bookkeeping_keys([doc])
        report.seen += 1
        if doc.text.strip():
            yield doc
        else:
            report.empty.append(doc.id)


def _info(spec: IndexSpec) -> FormatInfo:
    from m3vdb.formats.transfer import info_for_spec

    return info_for_spec(spec)


def _add(report: IndexReport, other: IndexReport) -> None:
    for key in ("indexed", "replaced", "split", "entries", "tokens"):
        setattr(report, key, getattr(report, key) + getattr(other, key))
    report.unindexable += other.unindexable
