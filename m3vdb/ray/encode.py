"""The Ray Data encoding step: documents in, stored entries out, the encoder as a class UDF
(one encoder per actor) in ``map_batches``.

An encoded batch is a record batch of the m3vdb embedding format v1 (``formats/table.py``)
plus three accounting columns: ``tokens`` (the tokens encoded for a document, on its first
row), ``unindexable`` (True on a row that stands for a document encoded without any sparse
weight > 0: nothing of it can be stored; its vectors are null) and ``error`` (an m3vdb
error raised in the actor, as JSON, on a batch's only row: Ray would turn it into its own
exception type and lose the message's type). :func:`split_batch` takes them apart again and
raises the error on the driver as the type it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from m3vdb.connectors.common import batched
from m3vdb.errors import M3VDBError
from m3vdb.formats.table import COLUMNS, FormatInfo, arrow_schema, pyarrow, to_record_batch
from m3vdb.indexing.chunking import DEFAULT_CHUNKING, Chunking, content_hash, entry_capacity
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.spec import IndexSpec

#: The accounting columns an encoded batch carries besides the format's.
TOKENS, UNINDEXABLE, ERROR = "tokens", "unindexable", "error"


def ray_module() -> Any:
    """``ray`` with Ray Data, or a MissingDependencyError naming ``pip install 'm3vdb[ray]'``."""
    ray = import_optional("ray", package="ray[data]", extra="ray", purpose="Encoding on Ray")
    import_optional("ray.data", package="ray[data]", extra="ray", purpose="Encoding on Ray")
    return ray


@dataclass(frozen=True)
class ActorPool:
    """How the encoder actors are placed (Ray Data's ``map_batches`` options).

    Attributes:
        concurrency: encoder actors (each loads the model once).
        num_gpus: GPUs per actor (0 on CPU-only nodes; 1 gives each actor a GPU of its own,
            0.5 packs two actors per GPU).
        num_cpus: CPUs per actor (torch's threads in it).
        batch_size: documents per call of an actor.
        token_budget: most tokens per forward pass inside an actor (the encoder packs a
            call's texts into forward passes by this budget); None: the encoder's default
            (sized to the device's free memory).
        device: the torch device in each actor (None: the best present, i.e. the GPU Ray
            assigned when ``num_gpus`` > 0).
        dtype: the encoder's dtype (``"auto"``, ``"float32"``, ...).
    """

    concurrency: int = 1
    num_gpus: float = 0
    num_cpus: float = 1
    batch_size: int = 32
    token_budget: int | None = None
    device: str | None = None
    dtype: str = "auto"

    def __post_init__(self) -> None:
        from m3vdb.errors import InputError

        if self.concurrency < 1 or self.batch_size < 1 or self.num_gpus < 0 or self.num_cpus < 0:
            raise InputError(
                f"the actor pool needs concurrency >= 1, batch_size >= 1 and non-negative "
                f"num_gpus / num_cpus, got {self}"
            )
        if self.token_budget is not None and self.token_budget < 1:
            raise InputError(f"token_budget must be positive, got {self.token_budget}")


class EncodeBatches:
    """The class UDF: loads the encoder once per actor, then turns each batch of documents
    (``id``, ``text``, ``metadata`` as JSON) into the entries ``m3vdb.index`` stores
    (windows for long documents, bookkeeping metadata), as an encoded batch (module
    docstring). Blank documents must be left out by the caller (they are reported there)."""

    def __init__(
        self,
        model: str,
        *,
        info: FormatInfo,
        chunking: Chunking | None,
        pool: ActorPool,
    ) -> None:
        self.info = info
        self.error: M3VDBError | None = None
        try:
            self._load(model, chunking, pool)
        except M3VDBError as exc:  # raised on the driver with the first batch
            self.error = exc

    def _load(self, model: str, chunking: Chunking | None, pool: ActorPool) -> None:
        from m3vdb.encoder import M3Encoder
        from m3vdb.indexing.chunking import check_chunking
        from m3vdb.indexing.pipeline import check_dimensions

        info = self.info
        self.encoder = M3Encoder(
            model,
            device=pool.device,
            dtype=pool.dtype,  # type: ignore[arg-type]
            token_budget=pool.token_budget,
        )
        self.spec = (
            IndexSpec.from_record(info.spec)
            if info.spec is not None
            else IndexSpec.for_encoder(
                self.encoder,
                dense=info.dense_dim is not None,
                colbert=info.colbert_dim is not None,
            )
        )
        check_dimensions(self.encoder, self.spec)
        self.capacity = entry_capacity(self.spec, self.encoder)
        check_chunking(chunking, self.capacity)
        self.chunking = chunking

    def __call__(self, batch: Any) -> Any:
        try:
            if self.error is not None:
                raise self.error
            return self._encode(batch)
        except M3VDBError as exc:
            pa = pyarrow()
            row = (Document("", "", {}), M3Embedding(dense=None, sparse=None, colbert=None))
            table = pa.Table.from_batches([to_record_batch([row], self.info)])
            table = table.append_column(TOKENS, pa.array([0], pa.int64()))
            table = table.append_column(UNINDEXABLE, pa.array([False], pa.bool_()))
            return table.append_column(ERROR, pa.array([error_record(exc)], pa.string()))

    def _encode(self, batch: Any) -> Any:
        from m3vdb.indexing.pipeline import encode_entries

        pa = pyarrow()
        docs = [
            Document(str(i), str(t), json.loads(m) if isinstance(m, str) else dict(m or {}))
            for i, t, m in zip(
                batch.column("id").to_pylist(),
                batch.column("text").to_pylist(),
                batch.column("metadata").to_pylist(),
            )
        ]
        hashes = {d.id: content_hash(d, self.chunking) for d in docs}
        tokens: dict[str, int] = {}
        pairs, written, _, _ = encode_entries(
            self.encoder, docs, hashes, self.chunking, self.capacity, self.spec, doc_tokens=tokens
        )
        # a document encoded with no sparse weight: one row saying so, vectors null
        lost = [d for d in docs if d.id not in written]
        empty = M3Embedding(dense=None, sparse=None, colbert=None)
        rows = [*pairs, *((d, empty) for d in lost)]
        table = pa.Table.from_batches([to_record_batch(rows, self.info)])
        counted = [
            tokens.get(str(d.metadata["parent_id"]), 0) if d.metadata["chunk"] == 0 else 0
            for d, _ in pairs
        ]
        table = table.append_column(
            TOKENS, pa.array(counted + [tokens.get(d.id, 0) for d in lost], pa.int64())
        )
        table = table.append_column(
            UNINDEXABLE, pa.array([False] * len(pairs) + [True] * len(lost), pa.bool_())
        )
        return table.append_column(ERROR, pa.nulls(table.num_rows, pa.string()))


def error_record(exc: M3VDBError) -> str:
    """An m3vdb error as JSON (its type's name, message, ``caller_fault``, ``retriable``)."""
    return json.dumps(
        {
            "type": type(exc).__name__,
            "message": str(exc),
            "caller_fault": exc.caller_fault,
            "retriable": exc.retriable,
        }
    )


def raise_error_record(text: str) -> None:
    """Raises the error :func:`error_record` wrote, as its own type where m3vdb.errors has
    it (else as an M3VDBError)."""
    from m3vdb import errors

    record = json.loads(text)
    cls = getattr(errors, str(record.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, M3VDBError)):
        cls = M3VDBError
    exc = cls.__new__(cls)
    Exception.__init__(exc, str(record.get("message", "")))
    exc.caller_fault = bool(record.get("caller_fault", True))
    exc.retriable = bool(record.get("retriable", False))
    raise exc


def documents_dataset(documents: Iterable[Document], *, rows_per_block: int = 32) -> Any:
    """A Dataset of ``documents`` (columns ``id``, ``text``, ``metadata`` as JSON), or None
    when there are none.

    The documents stream through the driver once: each block of ``rows_per_block`` goes to
    Ray's object store as it is read (``ray.put``), and the driver keeps only its reference,
    so the driver's memory does not hold the corpus (the object store does, spilling to
    disk when full). A block is the unit an actor takes: ``rows_per_block`` = the actors'
    batch size spreads the work over every actor.
    """
    ray = ray_module()
    pa = pyarrow()
    refs = []
    for block in batched(documents, rows_per_block):
        table = pa.table(
            {
                "id": pa.array([d.id for d in block], pa.string()),
                "text": pa.array([d.text for d in block], pa.string()),
                "metadata": pa.array(
                    [json.dumps(dict(d.metadata), ensure_ascii=False) for d in block], pa.string()
                ),
            }
        )
        refs.append(ray.put(table))
    return ray.data.from_arrow_refs(refs) if refs else None


def encode_dataset(
    ds: Any,
    *,
    model: str,
    info: FormatInfo,
    chunking: Chunking | None = DEFAULT_CHUNKING,
    pool: ActorPool | None = None,
) -> Any:
    """A Dataset of documents (columns ``id``, ``text``, ``metadata``: JSON strings; no blank
    text) as a Dataset of encoded batches (module docstring): the entries ``m3vdb.index``
    stores, same ids and windows.

    Args:
        ds: a ``ray.data.Dataset`` (e.g. :func:`documents_dataset`).
        model: the checkpoint every actor loads: a hub id, or a path every node can read.
        info: the format's metadata for the entries; its ``spec`` (an IndexSpec record)
            says which outputs to compute (all three when None).
        chunking: the windows of long documents, as ``m3vdb.index`` (None: refuse them).
        pool: the actor pool (concurrency, GPUs, batch size, token budget).
    """
    ray = ray_module()
    pool = pool or ActorPool()
    return ds.map_batches(
        EncodeBatches,
        fn_constructor_kwargs=dict(model=str(model), info=info, chunking=chunking, pool=pool),
        batch_size=pool.batch_size,
        batch_format="pyarrow",
        zero_copy_batch=True,
        compute=ray.data.ActorPoolStrategy(size=pool.concurrency),
        num_gpus=pool.num_gpus,
        num_cpus=pool.num_cpus,
    )


def iter_tables(ds: Any) -> Iterator[Any]:
    """The Dataset's blocks on the driver, one at a time (memory bounded by a block)."""
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")


@dataclass
class Accounting:
    """What an encoded batch says besides its entries."""

    unindexable: list[str]
    tokens: int
    indexed: int  # documents with entries (first entries in the batch)
    split: int  # of those, stored as windows


def split_batch(table: Any, info: FormatInfo) -> tuple[Any, Accounting]:
    """(the entries as a table of the format's schema, the batch's accounting)."""
    pa = pyarrow()
    import pyarrow.compute as pc

    if ERROR in table.column_names and table.column(ERROR).null_count < table.num_rows:
        raise_error_record(table.column(ERROR).drop_null()[0].as_py())
    lost = table.column(UNINDEXABLE)
    entries = table.filter(pc.invert(lost)).select(list(COLUMNS))
    firsts = [
        (i, json.loads(m))
        for i, m in zip(entries.column("id").to_pylist(), entries.column("metadata").to_pylist())
    ]
    firsts = [(i, m) for i, m in firsts if m.get("chunk", 0) == 0]
    accounting = Accounting(
        unindexable=table.filter(lost).column("id").to_pylist(),
        tokens=int(pc.sum(table.column(TOKENS)).as_py() or 0),
        indexed=len(firsts),
        split=sum(1 for i, m in firsts if i != m.get("parent_id", i)),
    )
    schema = arrow_schema(info)
    return pa.Table.from_batches(entries.to_batches(), schema=entries.schema).cast(
        schema
    ), accounting
