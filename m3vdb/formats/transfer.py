"""Moving embeddings without re-encoding: ``encode`` (files -> an embedding dataset),
``load`` (dataset -> a collection, no model), ``export`` (collection -> dataset) and ``copy``
(collection -> collection, resumable by id). The library behind ``m3vdb encode / load /
export / copy``; the CLI stays thin.

Everything streams: memory is bounded by one batch of entries. ``encode`` produces exactly
the entries ``m3vdb.index`` stores (same sources, ids, windows and bookkeeping metadata): it
runs the indexing pipeline's own :func:`~m3vdb.indexing.pipeline.encode_entries`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from m3vdb.errors import CollectionNotFoundError, InputError, SchemaMismatchError
from m3vdb.formats.parquet import EmbeddingWriter, count_rows, read_batches, read_info
from m3vdb.formats.table import FormatInfo
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.spec import IndexSpec

Entries = list[tuple[Document, M3Embedding]]


@dataclass
class TransferReport:
    """What a load, export or copy did (filled as it goes)."""

    read: int = 0  # entries read from the source
    written: int = 0  # entries written to the destination
    skipped: int = 0  # entries already stored unchanged (copy resumes by id)
    seconds: float = 0.0


def info_for_spec(spec: IndexSpec) -> FormatInfo:
    """The FormatInfo of a collection's entries (what it does not store has no dimension)."""
    return FormatInfo(
        model=spec.model,
        dense_dim=spec.dense_dim if spec.dense else None,
        colbert_dim=spec.colbert_dim if spec.colbert else None,
        # int8 / binary collections keep (or give back) float originals: rows leave as float32
        colbert_type="float16" if spec.colbert_precision == "float16" else "float32",
        spec=spec.to_record(),
    )


def spec_for_info(info: FormatInfo) -> IndexSpec:
    """The IndexSpec a new collection gets for a dataset: the one recorded in it (export,
    copy, encode), else the outputs whose dimensions it declares, plus sparse."""
    if info.spec is not None:
        try:
            spec = IndexSpec.from_record(info.spec)
        except ValueError as exc:
            raise InputError(f"the dataset's recorded IndexSpec is not valid: {exc}") from exc
        problems = compatibility_problems(info, spec)
        if problems:
            raise InputError("the dataset's metadata contradicts itself: " + "; ".join(problems))
        return spec
    if info.dense_dim is None and info.colbert_dim is None:
        return IndexSpec(dense=False, colbert=False, model=info.model)
    return IndexSpec(
        dense_dim=info.dense_dim or 1024,
        colbert_dim=info.colbert_dim or 1024,
        dense=info.dense_dim is not None,
        colbert=info.colbert_dim is not None,
        colbert_precision=info.colbert_type,
        model=info.model,
    )


def compatibility_problems(info: FormatInfo, spec: IndexSpec) -> list[str]:
    """How a collection (``spec``) cannot hold a dataset's entries: a stored output the
    dataset lacks, or other dimensions (every problem)."""
    problems = []
    for name, dim in (("dense", info.dense_dim), ("colbert", info.colbert_dim)):
        stored = getattr(spec, name)
        want = getattr(spec, f"{name}_dim")
        if stored and dim is None:
            problems.append(f"the collection stores {name} vectors, the dataset has none")
        elif stored and dim != want:
            problems.append(f"{name} dimension: the collection holds {want}, the dataset {dim}")
    if info.spec is not None and spec.sparse and not info.spec.get("sparse", True):
        problems.append("the collection stores sparse weights, the dataset has none")
    return problems


@contextmanager
def _destination(target: Any, collection: str, info: FormatInfo, options: Any) -> Iterator[Any]:
    """The collection entries go to: an existing one checked against ``info`` (before
    anything is written), else a new one built from ``info``."""
    from m3vdb.connectors import connect
    from m3vdb.indexing.interrupts import children_ignore_ctrl_c

    with children_ignore_ctrl_c():
        try:
            dest = connect(target, collection=collection, options=options, create=False)
        except CollectionNotFoundError:
            dest = connect(target, collection=collection, spec=spec_for_info(info), options=options)
        except SchemaMismatchError:
            # built before m3vdb recorded specs: validated against the dataset's spec instead
            dest = connect(
                target,
                collection=collection,
                spec=spec_for_info(info),
                options=options,
                create=False,
            )
    try:
        problems = compatibility_problems(info, dest.spec)
        if problems:
            raise SchemaMismatchError(
                f"collection {collection!r} cannot hold these embeddings (model "
                f"{info.model!r}):\n  - " + "\n  - ".join(problems) + "\nNothing was written. "
                "Load into another collection name (a new one is built from the dataset), or "
                "drop this one first"
            )
        yield dest
    finally:
        dest.close()


def _source(target: Any, collection: str, options: Any) -> Any:
    from m3vdb.connectors import connect
    from m3vdb.indexing.interrupts import children_ignore_ctrl_c

    with children_ignore_ctrl_c():
        return connect(target, collection=collection, options=options, create=False)


def _bar(show: bool, total: int | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="entry", desc=desc, delay=1.0, disable=not show)


def _write(
    dest: Any, batches: Iterable[Entries], report: TransferReport, bar: Any, *, resume: bool
) -> None:
    from m3vdb.indexing.interrupts import InterruptGuard

    start = time.perf_counter()
    with InterruptGuard() as guard:
        for batch in batches:
            report.read += len(batch)
            todo = batch
            if resume:
                stored = {d.id: d for d in dest.get([d.id for d, _ in batch])}
                todo = [
                    (d, e)
                    for d, e in batch
                    if d.id not in stored
                    or (stored[d.id].text, dict(stored[d.id].metadata))
                    != (d.text, dict(d.metadata))
                ]
                report.skipped += len(batch) - len(todo)
            if todo:
                with guard.critical():
                    dest.upsert(todo, batch_size=len(todo))
                    report.written += len(todo)
            bar.update(len(batch))
            report.seconds = time.perf_counter() - start


def _same(stored: Document | None, doc: Document) -> bool:
    """An entry stored with the same text and metadata (written whole by an earlier copy)."""
    return (
        stored is not None
        and stored.text == doc.text
        and dict(stored.metadata) == dict(doc.metadata)
    )


def load(
    path: str | os.PathLike[str],
    target: Any,
    collection: str,
    *,
    options: Any = None,
    batch_size: int = 256,
    show_progress: bool = False,
    report: TransferReport | None = None,
) -> TransferReport:
    """Writes an m3vdb embedding dataset (a file or a folder of parts) into a collection; no
    model needed. A missing collection is built from the dataset's metadata; an existing one
    is checked against it first (SchemaMismatchError, nothing written, on another dimension
    or a stored output the dataset lacks). Upserts by id: loading twice stores it once.
    """
    report = report if report is not None else TransferReport()
    info = read_info(path)
    with _destination(target, collection, info, options) as dest:
        with _bar(show_progress, count_rows(path), f"load {collection}") as bar:
            _write(dest, read_batches(path, batch_size=batch_size), report, bar, resume=False)
    return report


def export(
    target: Any,
    collection: str,
    out: str | os.PathLike[str],
    *,
    options: Any = None,
    batch_size: int = 256,
    show_progress: bool = False,
    report: TransferReport | None = None,
) -> TransferReport:
    """Writes every entry a collection stores, with its stored embedding, to ``out`` (a
    ``.parquet`` file, or a folder of part files for any other path); outputs the collection
    does not store are null. The dataset records the collection's IndexSpec, so ``load``
    rebuilds the same collection elsewhere.

    Raises:
        CollectionNotFoundError: no such collection (nothing is written).
        UnsupportedCapabilityError: the database cannot give its vectors back
            (Elasticsearch).
    """
    report = report if report is not None else TransferReport()
    start = time.perf_counter()
    with _source(target, collection, options) as src:
        batches = src.scan_embeddings(batch_size=batch_size)
        with EmbeddingWriter(out, info_for_spec(src.spec)) as writer:
            with _bar(show_progress, src.count(), f"export {collection}") as bar:
                for batch in batches:
                    writer.write(batch)
                    report.read += len(batch)
                    report.written += len(batch)
                    bar.update(len(batch))
    report.seconds = time.perf_counter() - start
    return report


def copy(
    source: Any,
    collection: str,
    to: Any,
    to_collection: str | None = None,
    *,
    options: Any = None,
    to_options: Any = None,
    batch_size: int = 256,
    resume: bool = True,
    show_progress: bool = False,
    report: TransferReport | None = None,
) -> TransferReport:
    """Copies every entry of a collection, with its stored embedding, into another (any two
    targets), streaming, no model. A missing destination is built with the source's
    IndexSpec. Resumable by id: an entry already stored with the same text and metadata is
    not written again (``resume=False`` rewrites everything).

    Raises:
        InputError: the source and the destination are the same collection.
        SchemaMismatchError: an existing destination cannot hold the entries (nothing
            written).
    """
    to_collection = to_collection or collection
    if (
        isinstance(source, str)
        and isinstance(to, str)
        and (source, collection)
        == (
            to,
            to_collection,
        )
    ):
        raise InputError("copy needs another destination: give --to-collection or another --to")
    report = report if report is not None else TransferReport()
    with _source(source, collection, options) as src:
        info = info_for_spec(src.spec)
        with _destination(to, to_collection, info, to_options) as dest:
            with _bar(show_progress, src.count(), f"copy {collection}") as bar:
                _write(dest, src.scan_embeddings(batch_size=batch_size), report, bar, resume=resume)
    return report


def encode(
    paths: Any,
    out: str | os.PathLike[str],
    *,
    encoder: Any,
    chunking: Any = "default",
    colbert_type: Literal["float16", "float32"] = "float32",
    batch_size: int = 32,
    show_progress: bool = False,
    max_file_bytes: int | None = None,
    report: Any = None,
) -> Any:
    """Encodes files, folders or documents into an m3vdb embedding dataset at ``out``: the
    entries ``m3vdb.index`` would store in a new collection (same ids, windows of long
    documents, bookkeeping metadata). Blank documents and documents without a sparse weight
    are skipped and reported, as ``index`` does.

    Args:
        paths: what ``m3vdb.index`` takes as sources (paths are read and checked first).
        out: ``*.parquet`` for one file, any other path for a folder of part files.
        encoder: an encoder, or a function that loads one (called once).
        chunking: a ``Chunking`` (default: ``index``'s), or None to refuse long documents.

    Returns:
        An ``IndexReport`` (``indexed`` documents, ``entries`` written, ``split``...).
    """
    from m3vdb.connectors.common import batched
    from m3vdb.indexing import Corpus, IndexReport
    from m3vdb.indexing.chunking import (
        DEFAULT_CHUNKING,
        check_chunking,
        content_hash,
        entry_capacity,
    )
    from m3vdb.indexing.pipeline import check_dimensions, encode_entries, refuse_bookkeeping_keys
    from m3vdb.indexing.sources import DEFAULT_MAX_FILE_BYTES

    chunking = DEFAULT_CHUNKING if chunking == "default" else chunking
    corpus = (
        paths
        if isinstance(paths, Corpus)
        else Corpus.of(paths, max_file_bytes=max_file_bytes or DEFAULT_MAX_FILE_BYTES)
    )
    if not hasattr(encoder, "encode"):
        encoder = encoder()
    spec = IndexSpec.for_encoder(encoder, colbert_precision=colbert_type)
    check_dimensions(encoder, spec)
    capacity = entry_capacity(spec, encoder)
    check_chunking(chunking, capacity)
    report = report if report is not None else IndexReport()
    start = time.perf_counter()
    from tqdm.auto import tqdm

    with (
        EmbeddingWriter(out, info_for_spec(spec)) as writer,
        tqdm(
            total=corpus.count, unit="doc", desc="encode", delay=1.0, disable=not show_progress
        ) as bar,
    ):
        for batch in batched(corpus.documents(), batch_size):
            refuse_bookkeeping_keys(batch)
            report.seen += len(batch)
            todo = [d for d in batch if d.text.strip()]
            report.empty += [d.id for d in batch if not d.text.strip()]
            hashes = {d.id: content_hash(d, chunking) for d in todo}
            pairs, written, split, tokens = encode_entries(
                encoder, todo, hashes, chunking, capacity, spec
            )
            report.unindexable += [d.id for d in todo if d.id not in written]
            writer.write(pairs)
            report.indexed += len(written)
            report.split += split
            report.entries += len(pairs)
            report.tokens += tokens
            report.seconds = time.perf_counter() - start
            bar.update(len(batch))
    return report
