"""Qdrant edge: Qdrant's own Rust engine (``qdrant-edge-py``) embedded in this process, with
the layout, payload, point ids, filters and query plan of the qdrant-client engine
(:mod:`m3vdb.connectors.qdrant.layout`); only the calls differ (``EdgeShard`` instead of
``QdrantClient``).

Targets accepted by :meth:`QdrantEdgeEngine.open` (and so by ``m3vdb.connect``):

- ``qdrant+edge:PATH`` (or ``qdrant+edge://PATH``): the folder PATH holds one edge shard per
  collection, ``PATH/<collection>``; a missing shard is created (``create=True``).
- a ``qdrant_edge.EdgeShard`` the caller opened: that shard IS the collection (``collection``
  only names it in messages); ``close`` leaves it open and ``drop`` deletes its points.

An edge shard folder can be open in ONE process at a time (Qdrant locks its write-ahead log).
Inside this process, connectors on the same folder share one ``EdgeShard`` (a second
``EdgeShard.load`` of an open folder fails); another process holding the folder gives a
BackendError that says so.

Each shard records the spec it was built with in ``PATH/<collection>/m3vdb.json`` (edge has
no collection metadata of its own), written atomically when m3vdb creates the shard.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np

from m3vdb.connectors.disk import MARGIN_BYTES, check_room, check_room_for_write, unbacked_bytes
from m3vdb.connectors.engine import (
    EMBEDDED_CALL_TIMEOUT,
    CollectionInfo,
    record_json,
    settle_spec,
    spec_from_record_json,
)
from m3vdb.connectors.plan import SearchPlan
from m3vdb.connectors.qdrant.layout import QdrantLayoutEngine
from m3vdb.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
)
from m3vdb.schemas import qdrant as qschema
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.options import QdrantEdgeOptions
from m3vdb.schemas.spec import IndexSpec

SCHEME = "qdrant+edge"
# The file in which an edge shard persists its EdgeConfig (vectors, sparse vectors, HNSW).
CONFIG_FILE = "edge_config.json"
# The file in which m3vdb records the spec a shard was built with (see engine.record_json).
RECORD_FILE = "m3vdb.json"
# Messages of edge errors caused by the request (edge raises plain Exception).
_INPUT_MARKERS = (
    "wrong input",
    "bad input",
    "dimension error",
    "not existing vector",
    "bad request",
)
# Qdrant's write-ahead log is locked by the process that opened the shard.
_LOCK_MARKERS = ("wouldblock", "would block", "resource temporarily unavailable", "lock")
_PAYLOAD_TYPES = {"keyword": "Keyword", "int": "Integer", "float": "Float", "bool": "Bool"}


def edge() -> Any:
    """The ``qdrant_edge`` module, or a MissingDependencyError with the pip command."""
    return import_optional(
        "qdrant_edge",
        package="qdrant-edge-py",
        extra="qdrant-edge",
        purpose="The Qdrant edge connector",
    )


def filter_models(e: Any) -> SimpleNamespace:
    """Edge's filter classes under the names :func:`m3vdb.schemas.qdrant.compile_filter` uses
    (edge calls qdrant-client's ``Range`` ``RangeFloat``; the others are the same).

    ``MatchValue`` is wrapped: qdrant-edge-py 0.9.0 reads a Python ``True`` as the integer 1
    (bool is an int subclass and its binding tries int first), so ``eq("public", True)`` would
    match nothing; ``numpy.bool_`` is read as a bool.
    """

    def match_value(value: Any) -> Any:
        return e.MatchValue(np.bool_(value) if isinstance(value, bool) else value)

    return SimpleNamespace(
        Filter=e.Filter,
        FieldCondition=e.FieldCondition,
        MatchValue=match_value,
        MatchAny=e.MatchAny,
        Range=e.RangeFloat,
    )


def shard_root(target: str) -> str:
    """The folder of a ``qdrant+edge:PATH`` target."""
    scheme, _, rest = target.partition(":")
    if scheme.lower() != SCHEME:
        raise InputError(f"{target!r} is not a Qdrant edge target; use qdrant+edge:PATH")
    rest = rest[2:] if rest.startswith("//") else rest
    if not rest:
        raise InputError(f"{target!r} names no folder; use qdrant+edge:PATH")
    return rest


def shard_folder(root: str, collection: str) -> str:
    """``root/collection``; refuses names that would leave ``root``."""
    if collection in (".", "..") or any(c in collection for c in "/\\\0"):
        raise InputError(
            f"collection {collection!r} cannot name a folder under {root}; use a name without "
            "path separators"
        )
    return os.path.join(root, collection)


def edge_config(spec: IndexSpec, options: QdrantEdgeOptions) -> Any:
    """The EdgeConfig of a new shard: the layout of :func:`m3vdb.schemas.qdrant.vectors_config`
    (named dense DOT/COSINE, multivector MAX_SIM DOT with HNSW m=0 unless
    ``spec.colbert_index``, float16 optional; named sparse without IDF)."""
    e = edge()
    vectors: dict[str, Any] = {}
    if spec.dense:
        hnsw = None
        if options.dense_hnsw_m is not None or options.dense_hnsw_ef_construct is not None:
            hnsw = _hnsw(e, options.dense_hnsw_m, options.dense_hnsw_ef_construct)
        distance = e.Distance.Dot if spec.dense_metric == "ip" else e.Distance.Cosine
        vectors[spec.fields.dense] = e.EdgeVectorParams(
            size=spec.dense_dim, distance=distance, hnsw_config=hnsw
        )
    if spec.colbert:
        storage = qschema.colbert_storage(spec)
        quantization: Any = None
        if storage["quantization"] == "int8":
            quantization = e.ScalarQuantizationConfig(e.ScalarType.Int8, always_ram=True)
        elif storage["quantization"] == "binary":
            quantization = e.BinaryQuantizationConfig(always_ram=True)
        vectors[spec.fields.colbert] = e.EdgeVectorParams(
            size=spec.colbert_dim,
            distance=e.Distance.Dot,
            multivector_config=e.MultiVectorConfig(e.MultiVectorComparator.MaxSim),
            # m=0: no graph over token rows, as in the qdrant-client connector.
            hnsw_config=None if spec.colbert_index else _hnsw(e, 0, None),
            datatype=e.VectorStorageDatatype.Float16 if storage["datatype"] == "float16" else None,
            quantization_config=quantization,
            on_disk=storage["on_disk"],
        )
    if spec.colbert_fde is not None:
        # the MUVERA first stage: DOT (FDE inner products approximate MaxSim), default HNSW
        vectors[spec.fields.colbert_fde] = e.EdgeVectorParams(
            size=spec.colbert_fde.dim, distance=e.Distance.Dot
        )
    sparse = {spec.fields.sparse: e.EdgeSparseVectorParams()} if spec.sparse else None
    return e.EdgeConfig(
        vectors=vectors or None,
        sparse_vectors=sparse,
        max_search_threads=options.max_search_threads,
    )


def _hnsw(e: Any, m: int | None, ef_construct: int | None) -> Any:
    # Qdrant's defaults for what is left unset (m=16, ef_construct=100, full scan below 10 MB).
    return e.HnswIndexConfig(
        m=16 if m is None else m,
        ef_construct=100 if ef_construct is None else ef_construct,
        full_scan_threshold=10_000,
    )


def validate_config(config: dict[str, Any], spec: IndexSpec) -> list[str]:
    """Differences between a shard's persisted EdgeConfig (``edge_config.json``) and what
    ``spec`` expects, as :func:`m3vdb.schemas.qdrant.validate_collection` words them."""
    vectors = config.get("vectors") or {}
    problems: list[str] = []

    def check(name: str, what: str, size: int, distance: str, multi: bool) -> dict[str, Any]:
        found = vectors.get(name)
        if found is None:
            problems.append(f"{what} '{name}': missing (vectors found: {sorted(vectors)})")
            return {}
        if found.get("size") != size:
            problems.append(f"{what} '{name}': size {found.get('size')}, expected {size}")
        if str(found.get("distance", "")).lower() != distance.lower():
            problems.append(
                f"{what} '{name}': distance {found.get('distance')}, expected {distance}"
            )
        comparator = (found.get("multivector_config") or {}).get("comparator")
        if multi and str(comparator).lower() != "max_sim":
            problems.append(
                f"{what} '{name}': multivector comparator {comparator}, expected max_sim"
            )
        if not multi and comparator is not None:
            problems.append(f"{what} '{name}': is a multivector, expected a single vector")
        return dict(found)

    if spec.dense:
        distance = "Dot" if spec.dense_metric == "ip" else "Cosine"
        check(spec.fields.dense, "dense vector", spec.dense_dim, distance, multi=False)
    if spec.colbert:
        found = check(spec.fields.colbert, "ColBERT multivector", spec.colbert_dim, "Dot", True)
        if found:
            storage = qschema.colbert_storage(spec)
            datatype = str(found.get("datatype") or "float32").lower()
            quantization = found.get("quantization_config") or {}
            kind = next(iter(quantization), None) if isinstance(quantization, dict) else None
            kind = {"scalar": "int8"}.get(kind, kind) if kind else None
            if (datatype == "float16") != (storage["datatype"] == "float16") or (
                kind != storage["quantization"]
            ):
                problems.append(
                    f"ColBERT multivector '{spec.fields.colbert}': datatype {datatype}, "
                    f"quantisation {kind or 'none'}, expected {spec.colbert_precision}"
                )
    if spec.colbert_fde is not None:
        check(spec.fields.colbert_fde, "ColBERT FDE vector", spec.colbert_fde.dim, "Dot", False)
    if spec.sparse:
        sparse = config.get("sparse_vectors") or {}
        found_sparse = sparse.get(spec.fields.sparse)
        if found_sparse is None:
            problems.append(
                f"sparse vector '{spec.fields.sparse}': missing (sparse vectors found: "
                f"{sorted(sparse)})"
            )
        elif found_sparse.get("modifier") not in (None, "none"):
            problems.append(
                f"sparse vector '{spec.fields.sparse}': modifier {found_sparse['modifier']}, "
                "expected none (BGE-M3 weights are the score; IDF would change it)"
            )
    return problems


def translate_error(exc: Exception, what: str, where: str = "") -> M3VDBError:
    """The m3vdb error for an edge error (edge raises plain ``Exception`` with Qdrant's
    message): a rejected request is an InputError, a shard locked by another process a
    BackendError that says so, anything else a BackendError."""
    if isinstance(exc, M3VDBError):
        return exc
    message = str(exc)
    lowered = message.lower()
    if "wal" in lowered and any(marker in lowered for marker in _LOCK_MARKERS):
        return BackendError(
            f"the Qdrant edge shard {where or ''} is open in another process: Qdrant edge "
            "allows ONE process per shard folder. Close the other process's connector (or "
            f"the process), or use another folder. ({message})"
        )
    if any(marker in lowered for marker in _INPUT_MARKERS):
        return InputError(f"Qdrant edge rejected the {what}: {message}")
    return BackendError(f"Qdrant edge {what} failed: {message}")


# --------------------------------------------------------------------------- open shards


@dataclass
class _Open:
    shard: Any
    users: int


class _OpenShards:
    """The shards this process has open, by real path: connectors on one folder share ONE
    EdgeShard (edge refuses a second ``load`` of a folder it has open)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}

    def acquire(
        self, folder: str, *, spec: IndexSpec, options: QdrantEdgeOptions, create: bool
    ) -> Any:
        """The shard at ``folder``: already open in this process, opened, or created."""
        key = os.path.realpath(folder)
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                entry.users += 1
                return entry.shard
            e = edge()
            exists = os.path.exists(os.path.join(folder, CONFIG_FILE))
            if not exists and not create:
                raise CollectionNotFoundError(
                    os.path.basename(folder), f"Qdrant edge at {os.path.dirname(folder) or '.'}"
                )
            # opening touches the shard's mapped files: on a full disk that is a SIGBUS
            if exists:
                check_room(folder, unbacked_bytes(folder) + MARGIN_BYTES, "opening the shard")
            else:
                check_room(os.path.dirname(folder) or ".", MARGIN_BYTES, "creating the shard")
            try:
                if exists:
                    config = None
                    if options.max_search_threads is not None:
                        config = e.EdgeConfig(max_search_threads=options.max_search_threads)
                    shard = e.EdgeShard.load(folder, config)
                else:
                    os.makedirs(folder, exist_ok=True)
                    shard = e.EdgeShard.create(folder, edge_config(spec, options))
                    write_record(folder, spec)
            except Exception as exc:
                raise translate_error(exc, "shard open", folder) from exc
            self._open[key] = _Open(shard, 1)
            return shard

    def release(self, folder: str) -> None:
        """One connector is done with the shard; the last one flushes and closes it."""
        key = os.path.realpath(folder)
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users <= 0:
                del self._open[key]
                entry.shard.close()

    def drop(self, folder: str) -> None:
        """Closes the shard (for every connector on it) and deletes its folder."""
        key = os.path.realpath(folder)
        with self._lock:
            entry = self._open.pop(key, None)
            if entry is not None:
                entry.shard.close()
            shutil.rmtree(folder, ignore_errors=True)

    def current(self, folder: str) -> Any | None:
        """The shard open at ``folder`` now (None after a drop)."""
        entry = self._open.get(os.path.realpath(folder))
        return None if entry is None else entry.shard


OPEN_SHARDS = _OpenShards()


def write_record(folder: str, spec: IndexSpec) -> None:
    """Records ``spec`` in ``folder/m3vdb.json``, atomically (a temporary file renamed over)."""
    fd, tmp = tempfile.mkstemp(prefix=".m3vdb-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record_json(spec), file, sort_keys=True)
        os.replace(tmp, os.path.join(folder, RECORD_FILE))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_record(folder: str) -> IndexSpec | None:
    """The spec recorded in ``folder/m3vdb.json``; None without one (or an unreadable one)."""
    try:
        with open(os.path.join(folder, RECORD_FILE), encoding="utf-8") as file:
            return spec_from_record_json(json.load(file))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the engine


class QdrantEdgeEngine(QdrantLayoutEngine):
    """A Qdrant edge shard holding BGE-M3's outputs in native named vectors, with the layout
    and query plan of the qdrant-client engine (see the module docstring for the targets).
    Open it with :meth:`open` (``m3vdb.connect``); writes are one ``upsert_points`` per
    batch, searches one ``EdgeShard.query``.
    """

    call_timeout = EMBEDDED_CALL_TIMEOUT  # the engine runs in this process

    database = "Qdrant edge"

    def __init__(
        self,
        shard: Any,
        *,
        collection: str,
        spec: IndexSpec,
        folder: str | None = None,
    ) -> None:
        """Args:
        shard: the open ``EdgeShard``.
        collection: the collection name.
        spec: what the shard stores.
        folder: the shard's folder when m3vdb opened it from ``qdrant+edge:PATH`` (it is then
            shared with other engines of this process and released by ``close``); None for
            a shard passed in.
        """
        super().__init__(shard, collection=collection, spec=spec)
        self._folder = folder
        self._closed = False
        self._e = edge()
        self._filter_models = filter_models(self._e)

    # -- database level -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: Any,
        *,
        collection: str,
        spec: IndexSpec | None,
        default_spec: IndexSpec,
        options: QdrantEdgeOptions | None = None,
        create: bool = True,
    ) -> QdrantEdgeEngine:
        """Opens a collection in Qdrant edge, creating it if missing, else validating it (see
        ``Engine.open``). ``target``: ``qdrant+edge:PATH`` (collection = the shard folder
        ``PATH/<collection>``) or an ``EdgeShard`` (the collection itself, left open by
        ``close``; it has no record, so it is validated against ``spec or default_spec``).

        Raises:
            MissingDependencyError: qdrant-edge-py is not installed.
            InputError: the target or the collection name is not usable.
            CollectionNotFoundError: ``create=False`` and the shard does not exist.
            SchemaMismatchError: the existing shard does not match the spec.
            BackendError: the shard folder is open in another process.
        """
        options = options or QdrantEdgeOptions()
        e = edge()
        if isinstance(target, e.EdgeShard):
            if options.client_settings():
                raise InputError(
                    "QdrantEdgeOptions configure a shard m3vdb opens from qdrant+edge:PATH; an "
                    "EdgeShard passed in keeps its own settings: leave options out"
                )
            engine = cls(target, collection=collection, spec=spec or default_spec)
            engine._validate()
            engine._ensure_payload_indexes()
            return engine
        if not isinstance(target, str):
            raise InputError(
                f"cannot open Qdrant edge from a {type(target).__name__}; pass an "
                "qdrant_edge.EdgeShard or qdrant+edge:PATH"
            )
        folder = shard_folder(shard_root(target), collection)
        chosen = settle_spec(spec, read_record(folder), default_spec)
        shard = OPEN_SHARDS.acquire(folder, spec=chosen, options=options, create=create)
        engine = cls(shard, collection=collection, spec=chosen, folder=folder)
        try:
            engine._validate()
            engine._ensure_payload_indexes()
        except BaseException:
            engine.close()
            raise
        return engine

    @classmethod
    def drop_collection(
        cls, target: Any, collection: str, *, options: QdrantEdgeOptions | None = None
    ) -> bool:
        """Deletes the shard folder ``PATH/<collection>`` (closing it for every engine of this
        process); False when there is none. Only ``qdrant+edge:PATH`` targets: an
        ``EdgeShard`` passed in is the caller's (open it with ``connect`` and ``drop()`` to
        delete its points)."""
        if not isinstance(target, str):
            raise InputError(
                "drop on Qdrant edge takes qdrant+edge:PATH; an EdgeShard passed in is yours: "
                "connect(shard, ...).drop() deletes its points"
            )
        folder = shard_folder(shard_root(target), collection)
        if not os.path.exists(os.path.join(folder, CONFIG_FILE)):
            return False
        OPEN_SHARDS.drop(folder)
        return True

    @classmethod
    def list_collections(
        cls, target: Any, *, options: QdrantEdgeOptions | None = None
    ) -> list[CollectionInfo]:
        """Every shard folder under ``PATH`` with its point count and recorded spec (shards
        not open in this process are opened read-only for the count, then closed)."""
        if not isinstance(target, str):
            raise InputError("list_collections on Qdrant edge takes qdrant+edge:PATH")
        root = shard_root(target)
        if not os.path.isdir(root):
            return []
        out = []
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if not os.path.exists(os.path.join(folder, CONFIG_FILE)):
                continue
            recorded = read_record(folder)
            shard = OPEN_SHARDS.acquire(
                folder,
                spec=recorded or IndexSpec(),
                options=options or QdrantEdgeOptions(),
                create=False,
            )
            try:
                entries = int(shard.count(edge().CountRequest(exact=True)))
            except Exception as exc:
                raise translate_error(exc, "count", folder) from exc
            finally:
                OPEN_SHARDS.release(folder)
            out.append(CollectionInfo(name, entries, recorded))
        return out

    # -- state ----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``EdgeShard``, for what m3vdb does not wrap."""
        return self._shard()

    def _shard(self) -> Any:
        if self._folder is None:
            return self._client
        shard = OPEN_SHARDS.current(self._folder)
        if shard is None or self._closed:
            raise CollectionNotFoundError(self._collection, f"Qdrant edge at {self._folder}")
        return shard

    def close(self) -> None:
        """Releases the shard m3vdb opened (closed when no engine of this process uses it
        any more); a shard passed in stays open."""
        if self._folder is not None and not self._closed:
            self._closed = True
            OPEN_SHARDS.release(self._folder)

    def optimize(self) -> bool:
        """Runs Qdrant's segment optimizers (merges segments, builds the dense HNSW graph of
        large segments); blocks until done. Returns whether anything changed."""
        return bool(self.call("optimize", lambda: self._shard().optimize()))

    # -- the error table ------------------------------------------------------------------

    def is_transient(self, exc: Exception) -> bool:
        # In-process: no network, nothing a retry fixes.
        return isinstance(exc, M3VDBError) and exc.retriable

    def translate_error(self, exc: Exception, what: str) -> M3VDBError:
        return translate_error(exc, what, self._folder or "")

    # -- opening --------------------------------------------------------------------------

    def _update(self, what: str, operation: Any) -> None:
        self.call(what, lambda: self._shard().update(operation))

    def _ensure_payload_indexes(self) -> None:
        """Creates the payload index of every ``spec.metadata_fields`` key that has none;
        SchemaMismatchError for one of another type."""
        e = self._e
        schema = self.call("shard info", lambda: self._shard().info()).payload_schema or {}
        problems = []
        for field in self._spec.metadata_fields:
            key = qschema.metadata_key(self._spec, field.name)
            expected = getattr(e.PayloadSchemaType, _PAYLOAD_TYPES[field.type])
            found = schema.get(key)
            if found is None:
                self._update(
                    "payload index creation", e.UpdateOperation.create_field_index(key, expected)
                )
            elif found.data_type != expected:
                problems.append(
                    f"payload index '{key}': type {found.data_type}, expected {expected}"
                )
        if problems:
            raise self.schema_mismatch(problems, "Open it with matching metadata_fields.")

    def _validate(self) -> None:
        """SchemaMismatchError listing every difference between the shard and the spec.

        A shard opened from a folder is checked against its persisted ``edge_config.json``
        (vectors, sizes, distances, multivector comparator, datatype, sparse modifier). The
        Python API has no call that returns a loaded shard's config, so a shard passed in is
        probed instead: one query per named vector finds missing names and wrong sizes.
        """
        if self._folder is not None:
            path = os.path.join(self._folder, CONFIG_FILE)
            with open(path, encoding="utf-8") as file:
                problems = validate_config(json.load(file), self._spec)
        else:
            problems = self._probe()
        if problems:
            raise self.schema_mismatch(problems)

    def _probe(self) -> list[str]:
        e, spec = self._e, self._spec
        probes: list[tuple[str, str, Any]] = []
        if spec.dense:
            probes.append(("dense vector", spec.fields.dense, [0.0] * spec.dense_dim))
        if spec.colbert:
            probes.append(("ColBERT multivector", spec.fields.colbert, [[0.0] * spec.colbert_dim]))
        if spec.sparse:
            probes.append(("sparse vector", spec.fields.sparse, e.SparseVector([0], [1.0])))
        problems = []
        for what, name, vector in probes:
            request = e.QueryRequest(limit=1, query=e.Query.Nearest(vector, using=name))
            try:
                self._client.query(request)
            except Exception as exc:  # edge raises plain Exception: its message says which
                problems.append(f"{what} '{name}': {exc}")
        return problems

    # -- collection level ---------------------------------------------------------------

    def write(
        self, pairs: Sequence[tuple[Document, M3Embedding]], *, fde: np.ndarray | None = None
    ) -> None:
        """The batch, after checking the file system has room for it (``connectors.disk``):
        the shard memory-maps its files, and a full disk would kill the process."""
        if self._folder is not None:
            check_room_for_write(self._folder, pairs)
        super().write(pairs, fde=fde)

    def count(self) -> int:
        """Number of documents stored (exact count)."""
        request = self._e.CountRequest(exact=True)
        return int(self.call("count", lambda: self._shard().count(request)))

    def drop(self) -> None:
        """Deletes the collection: the shard folder m3vdb opened (closing it for every
        engine of this process), or every point of a shard passed in (whose folder and
        config are the caller's)."""
        if self._folder is not None:
            self._closed = True
            OPEN_SHARDS.drop(self._folder)
            return
        self._delete_matching(self._e.Filter(must=[]))

    # -- the native calls of the shared layout ------------------------------------------

    def _native_filter(self, flt: Filter | None) -> Any:
        return qschema.compile_filter(flt, self._spec, self._filter_models)

    def _point(self, doc: Document, emb: M3Embedding, fde: np.ndarray | None = None) -> Any:
        spec, e = self._spec, self._e
        vector: dict[str, Any] = {}
        if spec.dense and emb.dense is not None:
            vector[spec.fields.dense] = emb.dense.tolist()
        if spec.sparse and emb.sparse is not None:
            vector[spec.fields.sparse] = self._sparse_vector(emb.sparse)
        if spec.colbert and emb.colbert is not None:
            qschema.check_multivector_cap(spec, doc.id, int(emb.colbert.shape[0]))
            vector[spec.fields.colbert] = emb.colbert.tolist()
        vector.update(qschema.fde_vector(spec, doc.id, fde))
        return e.Point(qschema.point_id(doc.id), vector, qschema.point_payload(doc, spec))

    def _upsert(self, points: list[Any]) -> None:
        self._update("upsert", self._e.UpdateOperation.upsert_points(points))

    def _delete_points(self, point_ids: list[str]) -> None:
        self._update("delete", self._e.UpdateOperation.delete_points(point_ids))

    def _delete_matching(self, native_filter: Any) -> None:
        self._update("delete", self._e.UpdateOperation.delete_points_by_filter(native_filter))

    def _retrieve(self, point_ids: list[str]) -> list[Any]:
        return list(
            self.call(
                "retrieve",
                lambda: self._shard().retrieve(point_ids, with_payload=True, with_vector=False),
            )
        )

    def _scroll(
        self, native_filter: Any, limit: int, offset: Any, *, with_vectors: bool = False
    ) -> tuple[list[Any], Any]:
        request = self._e.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=native_filter,
            with_payload=True,
            with_vector=with_vectors,
        )
        records, next_offset = self.call("scroll", partial(self._shard().scroll, request))
        return list(records), next_offset

    def _vector_query(self, vector: Any, using: str) -> Any:
        return self._e.Query.Nearest(vector, using=using)

    def _sparse_vector(self, weights: Mapping[int, float]) -> Any:
        keys = sorted(weights)
        return self._e.SparseVector([int(k) for k in keys], [float(weights[k]) for k in keys])

    def _fusion(self, plan: SearchPlan, weights: list[float]) -> Any:
        e = self._e
        if plan.fusion == "weighted":
            terms = [
                e.Expression.Mult([e.Expression.Constant(w), e.Expression.Variable(f"$score[{i}]")])
                for i, w in enumerate(weights)
            ]
            return e.Formula(
                e.Expression.Sum(terms), defaults={f"$score[{i}]": 0.0 for i in range(len(terms))}
            )
        return e.Fusion.Rrf(k=plan.rrf_k + 1)

    def _prefetch(self, query: Any, *, limit: int, native_filter: Any, stages: Any = None) -> Any:
        if stages is None:
            return self._e.Prefetch(limit=limit, query=query, filter=native_filter)
        return self._e.Prefetch(limit=limit, prefetches=stages, query=query, filter=native_filter)

    def _query(
        self,
        query: Any,
        *,
        limit: int,
        native_filter: Any,
        stages: Any = None,
        colbert: bool = False,
    ) -> list[Any]:
        e = self._e
        params = None
        oversampling = qschema.RESCORE_OVERSAMPLING.get(self._spec.colbert_precision)
        if colbert and oversampling is not None:
            params = e.SearchParams(
                quantization=e.QuantizationSearchParams(rescore=True, oversampling=oversampling)
            )
        if stages is None:
            request = e.QueryRequest(
                limit=limit, query=query, filter=native_filter, with_payload=True, params=params
            )
        else:
            request = e.QueryRequest(
                limit=limit,
                prefetches=stages,
                query=query,
                filter=native_filter,
                with_payload=True,
                params=params,
            )
        return list(self.call("search", lambda: self._shard().query(request)))
