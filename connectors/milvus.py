"""Milvus connector: BGE-M3's dense, sparse and ColBERT outputs in Milvus's native fields,
queried through pymilvus's ``MilvusClient`` (Milvus Lite files or Milvus servers).

Targets accepted by :func:`open_connector` (and ``connectors.connect``): a
``pymilvus.MilvusClient``, ``milvus-lite:PATH.db`` or a bare ``PATH.db`` (Milvus Lite),
``milvus://[USER:PASSWORD@]HOST[:PORT]`` and ``milvus+https://...`` (a server, default port
19530).

What runs where (see ``schemas.milvus`` for the collection layout):

- ``dense`` / ``sparse``: one ``search`` request with the filter expression.
- ``hybrid``: one ``hybrid_search`` with a dense and a sparse ``AnnSearchRequest``, each carrying
  the filter, fused by ``RRFRanker(k)`` or ``WeightedRanker(w_dense, w_sparse)`` in Milvus. With
  ``rerank`` and ColBERT stored, the fused candidates are reranked by MaxSim: on the ``struct``
  layout by a second ``search`` on ``colbert[vec]`` (metric ``MAX_SIM_IP``) restricted to the
  candidates' ids; on the ``companion`` layout by ONE query of the companion collection for the
  candidates' rows and MaxSim in numpy (exact: the sum over query rows of the best dot product).
- ``colbert``: on ``struct``, one ``search`` with the query rows as an ``EmbeddingList``; on
  ``companion``, candidate generation by one multi-vector ``search`` of the companion (every
  query row finds its nearest token rows, under the filter) followed by exact MaxSim over the
  candidates' rows. Candidate generation is approximate (like ColBERT's own PLAID), the final
  scores are exact.

Writes on the companion layout keep every document whole even when a batch fails half-way:
(1) the batch's new ColBERT rows are written under a fresh ``version``; (2) the main entities are
upserted pointing at that version; (3) rows of other versions of those documents are deleted.
Readers only use rows whose version the main entity names, so a failure in (1) or (2) leaves the
old document intact (the new rows are deleted again, and are invisible if even that fails), and a
failure in (3) leaves only invisible garbage, removed by the next write of the document.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np

from m3vdb.connectors.base import FilterLike
from m3vdb.connectors.common import BaseConnector, batched, closed_on_error, resolve_spec
from m3vdb.connectors.plan import SearchPlan
from m3vdb.connectors.registry import lite_path
from m3vdb.schemas import milvus as ms
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
    MissingDependencyError,
)
from m3vdb.schemas.filters import parse_filter
from m3vdb.schemas.milvus import ColbertLayout, MilvusCapabilities
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.options import MilvusOptions
from m3vdb.schemas.scoring import maxsim
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from m3vdb.schemas.encoding import Encoder

__all__ = [
    "MilvusCapabilities",
    "MilvusConnector",
    "detect_capabilities",
    "open_connector",
]

DEFAULT_PORT = 19530
# Bytes of ColBERT rows per insert request. Measured on Milvus Lite 2.5.1 (bench/README.md):
# 1,024 rows of 1,024 floats (4 MiB) take 0.3 s, 2,048 rows (8 MiB) take 12 s with gRPC
# "too_many_pings" resets; 4 MiB also stays far under gRPC's message limit on servers.
_INSERT_BYTES = 4 * 2**20


def import_pymilvus() -> Any:
    """``pymilvus``, or MissingDependencyError with the pip command."""
    return import_optional(
        "pymilvus", package="pymilvus", extra="milvus", purpose="The Milvus connector"
    )


# --------------------------------------------------------------------------- errors


def is_transient(exc: Exception) -> bool:
    """Whether a pymilvus / gRPC error may pass on retry: the server unavailable or not ready,
    a deadline exceeded, a rate limit. Invalid parameters, missing collections and schema
    errors are not."""
    import grpc

    transient_grpc = {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
    if isinstance(exc, grpc.RpcError):
        return exc.code() in transient_grpc  # type: ignore[attr-defined]
    from pymilvus.exceptions import MilvusException, MilvusUnavailableException

    if isinstance(exc, MilvusUnavailableException):
        return True
    if isinstance(exc, MilvusException):
        code = exc.code
        if code in transient_grpc:
            return True
        # Milvus's own codes: 2 service unavailable, 3 memory limit, 8 rate limit.
        if code in (2, 3, 8):
            return True
        message = str(exc.message).lower()
        return any(
            hint in message
            for hint in ("rate limit", "not ready", "unavailable", "timeout", "retry run out")
        )
    return isinstance(exc, (TimeoutError, ConnectionError))


def translate_error(exc: Exception, what: str) -> M3VDBError:
    """A pymilvus / gRPC exception as an m3vdb error (the same types for Lite and servers)."""
    if isinstance(exc, M3VDBError):
        return exc
    from pymilvus.exceptions import MilvusException, ParamError

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, ParamError) or (isinstance(exc, MilvusException) and exc.code == 1100):
        return InputError(f"Milvus rejected the {what} as invalid: {message}")
    if isinstance(exc, MilvusException) and exc.code == 100:
        return BackendError(
            f"{what}: the collection does not exist (dropped elsewhere?): {message}. Open the "
            "connector again to recreate it"
        )
    return BackendError(f"{what} failed: {message}", retriable=is_transient(exc))


# --------------------------------------------------------------------------- opening


def _client_from_url(url: str, options: MilvusOptions) -> tuple[Any, bool]:
    """(MilvusClient, is_lite) for a URL; the caller owns (closes) the client."""
    pymilvus = import_pymilvus()
    path = lite_path(url)
    if path is not None:
        if not path.endswith(".db"):
            raise InputError(f"Milvus Lite needs a file path ending in .db, got {path!r}")
        if importlib.util.find_spec("milvus_lite") is None:
            raise MissingDependencyError("milvus-lite", "milvus", "Milvus Lite (a local .db file)")
        if options.client_settings():
            raise InputError(
                f"MilvusOptions {options} configure a Milvus server client; Milvus Lite "
                f"({path}) takes none: leave options out"
            )
        try:
            return pymilvus.MilvusClient(path), True
        except Exception as exc:
            raise translate_error(exc, f"opening Milvus Lite at {path!r}") from exc
    parts = urlsplit(url)
    scheme = {"milvus": "http", "milvus+http": "http", "milvus+https": "https"}.get(
        parts.scheme.lower()
    )
    if scheme is None or not parts.hostname:
        raise InputError(
            f"not a Milvus URL: {url!r}; use milvus-lite:PATH.db, PATH.db, "
            "milvus://HOST:19530 or milvus+https://HOST:PORT"
        )
    uri = f"{scheme}://{parts.hostname}:{parts.port or DEFAULT_PORT}"
    token = options.token or ""
    if parts.username and not token:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    settings: dict[str, Any] = {}
    if options.db_name is not None:
        settings["db_name"] = options.db_name
    if options.timeout is not None:
        settings["timeout"] = options.timeout
    try:
        return pymilvus.MilvusClient(uri=uri, token=token, **settings), False
    except Exception as exc:
        raise translate_error(exc, f"connecting to Milvus at {uri}") from exc


def detect_capabilities(client: Any, *, lite: bool | None = None) -> MilvusCapabilities:
    """Asks the server its version once. Milvus Lite does not implement GetVersion (gRPC
    UNIMPLEMENTED), which is how a client object handed to us is recognised as Lite."""
    if lite:
        return MilvusCapabilities.for_lite()
    # pymilvus logs every failed call with a traceback; Lite's expected UNIMPLEMENTED is noise.
    pymilvus_logger = logging.getLogger("pymilvus")
    level = pymilvus_logger.level
    pymilvus_logger.setLevel(logging.CRITICAL)
    try:
        version = client.get_server_version()
    except Exception as exc:
        code = getattr(exc, "code", None)
        status = code() if callable(code) else code
        if "UNIMPLEMENTED" in str(status) or "UNIMPLEMENTED" in str(exc):
            return MilvusCapabilities.for_lite()
        raise translate_error(exc, "asking Milvus for its version") from exc
    finally:
        pymilvus_logger.setLevel(level)
    return MilvusCapabilities.for_server(str(version))


def open_connector(
    target: Any,
    *,
    collection: str,
    encoder: Encoder | None = None,
    spec: IndexSpec | None = None,
    options: MilvusOptions | None = None,
    create: bool = True,
) -> MilvusConnector:
    """Opens ``collection`` in the Milvus ``target``, creating it (and its companion collection,
    indexes, and loading them) when missing, else validating it against ``spec``.

    Args:
        target: a ``pymilvus.MilvusClient`` (left open by ``close``) or a URL (see the module
            docstring).
        collection: the collection name.
        encoder: encodes texts on upsert and search.
        spec: what to store; defaults to the encoder's dimensions (or BGE-M3's).
        options: client settings for a server URL (token, database, timeout).
        create: create the collection when it is missing; with False, a missing collection
            (or Milvus Lite file) raises CollectionNotFoundError and nothing is created.

    Raises:
        MissingDependencyError: pymilvus (or milvus-lite for a .db file) is not installed.
        InputError: the URL is not understood.
        CollectionNotFoundError: ``create=False`` and the collection does not exist.
        SchemaMismatchError: the existing collection (or the encoder) does not match ``spec``.
        BackendError: Milvus failed.
    """
    spec = resolve_spec(collection, encoder, spec)
    options = options or MilvusOptions()
    if isinstance(target, str):
        path = lite_path(target)
        if not create and path is not None and not os.path.exists(path):
            # Opening a Lite file creates it: refuse before that.
            raise CollectionNotFoundError(collection, f"Milvus Lite at {path} (no such file)")
        client, lite = _client_from_url(target, options)
        owns = True
    else:
        import_pymilvus()
        if options.client_settings():
            raise InputError(
                "MilvusOptions configure the client m3vdb creates from a URL; a MilvusClient "
                "passed in keeps its own settings: leave options out"
            )
        client, lite, owns = target, None, False
    with closed_on_error(client, owns):
        caps = detect_capabilities(client, lite=lite)
        connector = MilvusConnector(
            client,
            collection=collection,
            encoder=encoder,
            spec=spec,
            capabilities=caps,
            owns=owns,
            create=create,
        )
    return connector


# --------------------------------------------------------------------------- the connector


class MilvusConnector(BaseConnector[Any]):
    """A Milvus collection holding BGE-M3 representations (implements ``connectors.Connector``;
    ``client`` is the ``pymilvus.MilvusClient``).

    Use :func:`open_connector` or ``connectors.connect``; the constructor expects a client and
    the capabilities already detected. ``upsert`` validates each batch completely (embeddings,
    id and text sizes, JSON metadata) before anything of it is written; a batch that fails
    leaves no document half-written (see the module docstring).
    """

    _database = "Milvus"
    _max_k = ms.QUERY_LIMIT

    def __init__(
        self,
        client: Any,
        *,
        collection: str,
        encoder: Encoder | None,
        spec: IndexSpec,
        capabilities: MilvusCapabilities,
        owns: bool = False,
        create: bool = True,
    ) -> None:
        if spec.colbert and spec.max_colbert_rows > ms.QUERY_LIMIT:
            raise InputError(
                f"max_colbert_rows={spec.max_colbert_rows} exceeds what one Milvus query returns "
                f"({ms.QUERY_LIMIT}); split long texts into windows"
            )
        super().__init__(
            client, collection=collection, spec=spec, encoder=encoder, owns_client=owns
        )
        self._caps = capabilities
        self._companion = ms.companion_name(collection)
        self._layout: ColbertLayout = self._open_or_create(create)

    # -- properties -----------------------------------------------------------------

    @property
    def capabilities(self) -> MilvusCapabilities:
        """What the server can do, detected when the connector opened."""
        return self._caps

    @property
    def colbert_layout(self) -> ColbertLayout:
        """``"struct"`` (native Array of Structs), ``"companion"`` (token-row collection) or
        ``"none"``."""
        return self._layout

    def _is_transient(self, exc: Exception) -> bool:
        return is_transient(exc)

    def _translate_error(self, exc: Exception, what: str) -> M3VDBError:
        return translate_error(exc, f"Milvus {what}")

    def _is_missing_collection(self, exc: Exception) -> bool:
        from pymilvus.exceptions import MilvusException

        # code 100: collection not found (Lite and servers)
        return isinstance(exc, MilvusException) and exc.code == 100

    def _where(self) -> str:
        return "Milvus Lite" if self._caps.lite else "Milvus"

    # -- schema ---------------------------------------------------------------------

    def _open_or_create(self, create: bool) -> ColbertLayout:
        c = self._client
        if not self._call("has_collection", lambda: c.has_collection(self._collection)):
            if not create:
                where = "Milvus Lite" if self._caps.lite else "Milvus"
                raise CollectionNotFoundError(self._collection, where)
            layout = self._caps.colbert_layout(self._spec)
            self._create(layout)
            return layout
        description = self._call("describe", lambda: c.describe_collection(self._collection))
        layout = ms.layout_of(description, self._spec)
        problems = ms.validate_collection(
            description,
            self._index_descriptions(self._collection),
            ms.main_fields(self._spec, layout),
            ms.main_indexes(self._spec, layout, self._caps),
        )
        if layout == "companion":
            if not self._call("has_collection", lambda: c.has_collection(self._companion)):
                problems.append(f"companion collection {self._companion!r} is missing")
            else:
                companion = self._call("describe", lambda: c.describe_collection(self._companion))
                problems += [
                    f"{self._companion}: {p}"
                    for p in ms.validate_collection(
                        companion,
                        self._index_descriptions(self._companion),
                        ms.companion_fields(self._spec),
                        ms.companion_indexes(self._spec, self._caps),
                    )
                ]
        if problems:
            raise self._schema_mismatch(
                problems,
                "Open it with an IndexSpec that matches (dimensions, metric, field names), "
                "or use another collection name, or drop it (connector.drop()) to rebuild it",
            )
        self._call("load", lambda: c.load_collection(self._collection))
        if layout == "companion":
            self._call("load", lambda: c.load_collection(self._companion))
        return layout

    def _index_descriptions(self, collection: str) -> dict[str, Mapping[str, Any]]:
        c = self._client
        out: dict[str, Mapping[str, Any]] = {}
        for name in self._call("list_indexes", lambda: c.list_indexes(collection)):
            info = self._call("describe_index", partial(c.describe_index, collection, name))
            if info:
                out[str(info.get("field_name", name))] = info
        return out

    def _create(self, layout: ColbertLayout) -> None:
        c = self._client
        spec, caps = self._spec, self._caps
        if layout == "companion":
            # The companion first: a main collection never exists without its rows' home.
            self._create_one(
                self._companion,
                ms.build_schema(ms.companion_fields(spec)),
                ms.build_index_params(ms.companion_indexes(spec, caps)),
            )
        try:
            self._create_one(
                self._collection,
                ms.build_schema(ms.main_fields(spec, layout)),
                ms.build_index_params(ms.main_indexes(spec, layout, caps)),
            )
        except BaseException:
            if layout == "companion":
                self._call("drop", lambda: c.drop_collection(self._companion))
            raise

    def _create_one(self, name: str, schema: Any, index_params: Any) -> None:
        c = self._client
        # Strong consistency: a search right after an upsert sees it (what the Connector
        # contract promises); Milvus servers default to Bounded staleness.
        self._call(
            f"create_collection {name!r}",
            lambda: c.create_collection(name, schema=schema, consistency_level="Strong"),
        )
        # sync=False: pymilvus would poll every 0.5 s per index for a build that, on an empty
        # collection, has nothing to do.
        try:
            self._call(
                f"create_index on {name!r}",
                lambda: c.create_index(name, index_params, sync=False),
            )
            self._call("load", lambda: c.load_collection(name))
        except BaseException:
            # An unindexed collection could not be loaded later: leave none behind.
            self._call("drop", lambda: c.drop_collection(name))
            raise

    # -- writes ---------------------------------------------------------------------

    def _write_batch(self, pairs: Sequence[tuple[Document, M3Embedding]]) -> None:
        """Main entities only, or (companion layout) the versioned three-step write of the
        module docstring."""
        for doc, _ in pairs:
            ms.check_document_limits(doc)
        c, spec = self._client, self._spec
        if self._layout != "companion":
            rows = [ms.main_row(d, e, spec, self._layout) for d, e in pairs]
            self._call("upsert", lambda: c.upsert(self._collection, rows))
            return
        version = uuid.uuid4().hex
        token_rows = [
            row for i, (d, e) in enumerate(pairs) for row in ms.colbert_rows(d, e, spec, version, i)
        ]
        per_request = max(1, _INSERT_BYTES // (4 * spec.colbert_dim))
        mains = [ms.main_row(d, e, spec, "companion", version) for d, e in pairs]
        try:
            for chunk in batched(token_rows, per_request):
                self._call("upsert of ColBERT rows", partial(c.upsert, self._companion, chunk))
            self._call("upsert", lambda: c.upsert(self._collection, mains))
        except BaseException:
            self._discard_version(version)
            raise
        ids = [d.id for d, _ in pairs]
        stale = ms.and_expressions(
            ms.ids_expression("doc_id", ids), f"version != {ms.json_string(version)}"
        )
        try:
            self._call(
                "delete of old ColBERT rows", lambda: c.delete(self._companion, filter=stale)
            )
        except M3VDBError as exc:
            # The documents are written; the old rows are invisible (wrong version) and go
            # with the next write of these documents.
            warnings.warn(f"old ColBERT rows were left in {self._companion!r}: {exc}", stacklevel=3)

    def _discard_version(self, version: str) -> None:
        expr = f"version == {ms.json_string(version)}"
        try:
            self._call("cleanup", lambda: self._client.delete(self._companion, filter=expr))
        except M3VDBError as exc:
            warnings.warn(
                f"rows of a failed write were left in {self._companion!r} (invisible: no "
                f"document points at version {version}): {exc}",
                stacklevel=4,
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes these ids and their ColBERT rows; unknown ids are ignored."""
        ids = self._check_ids(ids)
        if not ids:
            return
        c = self._client
        for chunk in batched(ids, 1000):
            # Main entities first: rows without a main entity are invisible to readers.
            self._call("delete", partial(c.delete, self._collection, ids=chunk))
            if self._layout == "companion":
                expr = ms.ids_expression("doc_id", chunk)
                self._call(
                    "delete of ColBERT rows", partial(c.delete, self._companion, filter=expr)
                )

    def drop(self) -> None:
        """Drops the collection and its companion collection."""
        c = self._client
        for name in (self._collection, self._companion):
            if self._call("has_collection", partial(c.has_collection, name)):
                self._call("drop", partial(c.drop_collection, name))

    # -- reads ----------------------------------------------------------------------

    def count(self) -> int:
        c = self._client
        rows = self._call(
            "count", lambda: c.query(self._collection, filter="", output_fields=["count(*)"])
        )
        return int(rows[0]["count(*)"])

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids are left out."""
        ids = self._check_ids(ids)
        found = {row[self._spec.fields.id]: row for row in self._main_rows(ids)}
        return [ms.document_from_row(found[i], self._spec) for i in ids if i in found]

    def scan(self, filter: FilterLike = None, *, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document matching ``filter`` (all of them without one), in pages of
        ``batch_size`` through Milvus's query iterator; order unspecified."""
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        names = self._spec.fields
        expr = ms.compile_filter(parse_filter(filter), names.metadata)
        fields = [names.id, *self._output_fields()]
        c = self._client
        iterator = self._call(
            "query iterator",
            lambda: c.query_iterator(
                self._collection, batch_size=batch_size, filter=expr, output_fields=fields
            ),
        )
        try:
            while page := self._call("query iterator page", iterator.next):
                for row in page:
                    yield ms.document_from_row(row, self._spec)
        finally:
            iterator.close()

    def get_embeddings(self, ids: Sequence[str]) -> dict[str, M3Embedding]:
        """The stored embeddings of these ids (for checks and migrations)."""
        ids = self._check_ids(ids)
        spec, names = self._spec, self._spec.fields
        extra = [f for f in (names.dense, names.sparse) if f in self._vector_fields()]
        if self._layout == "struct":
            extra.append(names.colbert)
        rows = self._main_rows(ids, extra)
        token_rows: dict[str, np.ndarray] = {}
        if self._layout == "companion":
            versions = {r[names.id]: r[ms.version_field(spec)] for r in rows}
            token_rows = self._colbert_arrays(versions)
        out: dict[str, M3Embedding] = {}
        for row in rows:
            emb = ms.embedding_from_rows(row, spec)
            if self._layout == "companion":
                emb = M3Embedding(
                    dense=emb.dense, sparse=emb.sparse, colbert=token_rows.get(row[names.id])
                )
            out[row[names.id]] = emb
        return out

    def _vector_fields(self) -> set[str]:
        names = self._spec.fields
        return {
            f
            for f, on in ((names.dense, self._spec.dense), (names.sparse, self._spec.sparse))
            if on
        }

    def _output_fields(self) -> list[str]:
        names = self._spec.fields
        fields = [names.text, names.metadata]
        if self._layout == "companion":
            fields.append(ms.version_field(self._spec))
        return fields

    def _main_rows(
        self, ids: Sequence[str], extra_fields: Sequence[str] = ()
    ) -> list[Mapping[str, Any]]:
        c, names = self._client, self._spec.fields
        fields = [names.id, *self._output_fields(), *extra_fields]
        rows: list[Mapping[str, Any]] = []
        for chunk in batched(list(dict.fromkeys(ids)), 1000):
            expr = ms.ids_expression(names.id, chunk)
            limit = len(chunk)
            rows += self._call(
                "query",
                partial(c.query, self._collection, filter=expr, output_fields=fields, limit=limit),
            )
        return rows

    def _colbert_arrays(self, versions: Mapping[str, str]) -> dict[str, np.ndarray]:
        """doc id -> its ColBERT rows of the given version, from the companion collection.

        One query per group of documents whose rows fit Milvus's 16384-entity query limit
        (one query for typical rerank candidate sets)."""
        per_query = max(1, ms.QUERY_LIMIT // self._spec.max_colbert_rows)
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for chunk in batched(list(versions), per_query):
            for row in self._query_rows(chunk, sorted({versions[i] for i in chunk})):
                if versions.get(row["doc_id"]) == row["version"]:
                    grouped.setdefault(row["doc_id"], []).append(row)
        return {doc_id: ms.colbert_from_rows(rows) for doc_id, rows in grouped.items()}

    def _query_rows(self, ids: list[str], versions: list[str]) -> list[Mapping[str, Any]]:
        c = self._client
        expr = ms.and_expressions(
            ms.ids_expression("doc_id", ids), ms.ids_expression("version", versions)
        )
        fields = ["doc_id", "version", "row", ms.COLBERT_SUBFIELD]
        rows = self._call(
            "query of ColBERT rows",
            lambda: c.query(
                self._companion, filter=expr, output_fields=fields, limit=ms.QUERY_LIMIT
            ),
        )
        if len(rows) >= ms.QUERY_LIMIT:
            # Leftover rows of older versions filled the page: split until each part fits.
            if len(ids) == 1:
                raise BackendError(
                    f"document {ids[0]!r} has more than {ms.QUERY_LIMIT} ColBERT rows stored in "
                    f"{self._companion!r}; upsert it again to remove rows of old versions"
                )
            half = len(ids) // 2
            return self._query_rows(ids[:half], versions) + self._query_rows(ids[half:], versions)
        return list(rows)

    # -- search ---------------------------------------------------------------------

    def _run(self, plan: SearchPlan) -> list[Hit]:
        """Runs a validated plan; see the module docstring for what runs where."""
        expr = ms.compile_filter(plan.filter, self._spec.fields.metadata)
        fields = self._spec.fields
        if plan.mode == "dense":
            return self._single_search(plan.dense, fields.dense, "dense", plan.k, expr)
        if plan.mode == "sparse":
            return self._single_search(plan.sparse, fields.sparse, "sparse", plan.k, expr)
        if plan.mode == "colbert":
            assert plan.colbert is not None  # the plan sets it for this mode
            return self._colbert_search(plan.colbert, plan.k, expr, plan.candidates)
        return self._hybrid_search(plan, expr)

    def _metric(self, field: str) -> str:
        if field == self._spec.fields.dense:
            return "IP" if self._spec.dense_metric == "ip" else "COSINE"
        return "IP"

    def _single_search(self, vector: Any, field: str, signal: str, k: int, expr: str) -> list[Hit]:
        c = self._client
        result = self._call(
            f"{signal} search",
            lambda: c.search(
                self._collection,
                data=[vector],
                anns_field=field,
                filter=expr,
                limit=k,
                output_fields=self._output_fields(),
                search_params={"metric_type": self._metric(field)},
            ),
        )
        return [
            self._hit(h, float(h["distance"]), {signal: float(h["distance"])}) for h in result[0]
        ]

    def _hit(self, raw: Mapping[str, Any], score: float, signals: Mapping[str, float]) -> Hit:
        entity = raw.get("entity") or {}
        names = self._spec.fields
        return Hit(
            id=str(raw["id"]),
            score=score,
            text=str(entity.get(names.text, "")),
            metadata=dict(entity.get(names.metadata) or {}),
            signal_scores=dict(signals),
        )

    def _hybrid_search(self, plan: SearchPlan, expr: str) -> list[Hit]:
        pymilvus = import_pymilvus()
        spec, c = self._spec, self._client
        requests = [
            pymilvus.AnnSearchRequest(
                [plan.dense],
                spec.fields.dense,
                {"metric_type": self._metric(spec.fields.dense)},
                plan.candidates,
                expr=expr or None,
            )
        ]
        weights = [plan.weights[0]]
        if plan.sparse:  # an empty sparse query cannot be sent; it would return nothing anyway
            requests.append(
                pymilvus.AnnSearchRequest(
                    [plan.sparse],
                    spec.fields.sparse,
                    {"metric_type": "IP"},
                    plan.candidates,
                    expr=expr or None,
                )
            )
            weights.append(plan.weights[1])
        if plan.fusion == "rrf":
            ranker = pymilvus.RRFRanker(plan.rrf_k)
        else:
            ranker = pymilvus.WeightedRanker(*weights, norm_score=True)
        limit = plan.candidates if plan.rerank else plan.k
        result = self._call(
            "hybrid search",
            lambda: c.hybrid_search(
                self._collection,
                requests,
                ranker=ranker,
                limit=limit,
                output_fields=self._output_fields(),
            ),
        )
        fused = list(result[0])
        if not plan.rerank:
            return [
                self._hit(h, float(h["distance"]), {"fusion": float(h["distance"])}) for h in fused
            ]
        assert plan.colbert is not None  # the plan sets it when it reranks
        return self._rerank(plan.colbert, fused, plan.k, expr)

    def _rerank(
        self, q_rows: np.ndarray, fused: list[Mapping[str, Any]], k: int, expr: str
    ) -> list[Hit]:
        if not fused:
            return []
        fusion = {str(h["id"]): float(h["distance"]) for h in fused}
        if self._layout == "struct":
            ids_expr = ms.ids_expression(self._spec.fields.id, list(fusion))
            hits = self._struct_colbert_search(q_rows, k, ms.and_expressions(ids_expr, expr))
            return [
                Hit(h.id, h.score, h.text, h.metadata, {"fusion": fusion[h.id], **h.signal_scores})
                for h in hits
            ]
        versions = {
            str(h["id"]): (h.get("entity") or {})[ms.version_field(self._spec)] for h in fused
        }
        arrays = self._colbert_arrays(versions)
        scored = []
        for h in fused:
            doc_id = str(h["id"])
            if doc_id not in arrays:
                raise BackendError(
                    f"document {doc_id!r} has no ColBERT rows of its version in "
                    f"{self._companion!r} (written by another tool?); upsert it again"
                )
            score = maxsim(q_rows, arrays[doc_id])
            scored.append(self._hit(h, score, {"fusion": fusion[doc_id], "colbert": score}))
        scored.sort(key=lambda hit: (-hit.score, hit.id))
        return scored[:k]

    def _colbert_search(self, q_rows: np.ndarray, k: int, expr: str, candidates: int) -> list[Hit]:
        if self._layout == "struct":
            return self._struct_colbert_search(q_rows, k, expr)
        c = self._client
        # Every query row looks for its nearest token rows; their documents are the candidates.
        per_row = min(ms.QUERY_LIMIT, max(8 * candidates, 256))
        data = q_rows.astype(np.float16) if self._spec.colbert_precision == "float16" else q_rows
        result = self._call(
            "ColBERT candidate search",
            lambda: c.search(
                self._companion,
                data=list(data),
                anns_field=ms.COLBERT_SUBFIELD,
                filter=expr,
                limit=per_row,
                output_fields=["doc_id"],
                search_params={"metric_type": "IP"},
            ),
        )
        doc_ids = list(dict.fromkeys(str(h["entity"]["doc_id"]) for hits in result for h in hits))
        if not doc_ids:
            return []
        names = self._spec.fields
        mains = {str(r[names.id]): r for r in self._main_rows(doc_ids)}  # drops orphaned rows
        versions = {i: str(r[ms.version_field(self._spec)]) for i, r in mains.items()}
        arrays = self._colbert_arrays(versions)
        hits = []
        for doc_id, row in mains.items():
            if doc_id in arrays:
                score = maxsim(q_rows, arrays[doc_id])
                raw = {"id": doc_id, "entity": row}
                hits.append(self._hit(raw, score, {"colbert": score}))
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:k]

    def _struct_colbert_search(self, q_rows: np.ndarray, k: int, expr: str) -> list[Hit]:
        from pymilvus.client.embedding_list import EmbeddingList

        c = self._client
        field = f"{self._spec.fields.colbert}[{ms.COLBERT_SUBFIELD}]"
        result = self._call(
            "ColBERT search",
            lambda: c.search(
                self._collection,
                data=[EmbeddingList(list(q_rows))],
                anns_field=field,
                filter=expr,
                limit=k,
                output_fields=self._output_fields(),
                search_params={"metric_type": "MAX_SIM_IP"},
            ),
        )
        return [
            self._hit(h, float(h["distance"]), {"colbert": float(h["distance"])}) for h in result[0]
        ]
