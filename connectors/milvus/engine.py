"""The Milvus engine: :class:`MilvusEngine` runs dense, sparse and hybrid searches on the main
collection and delegates everything about ColBERT rows to its layout's strategy
(``connectors.milvus.colbert``).

Each main collection records the spec it was built with (model, dimensions, options) in the
m3vdb record of its schema description, next to its ColBERT layout (Milvus Lite implements no
collection properties, so the description is the one native place both have)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np

from m3vdb.connectors.collection import check_ids
from m3vdb.connectors.common import batched, closed_on_error
from m3vdb.connectors.disk import MARGIN_BYTES, WRITE_AMPLIFICATION, batch_bytes, check_room
from m3vdb.connectors.engine import (
    EMBEDDED_CALL_TIMEOUT,
    CollectionInfo,
    Engine,
    record_json,
    settle_spec,
    spec_from_record_json,
)
from m3vdb.connectors.milvus.client import (
    client_from_url,
    detect_capabilities,
    import_pymilvus,
    is_transient,
    quiet_pymilvus,
    translate_error,
)
from m3vdb.connectors.milvus.colbert import STRATEGIES, ColbertStrategy
from m3vdb.connectors.milvus.store import IDS_PER_QUERY, Store
from m3vdb.connectors.plan import SearchPlan
from m3vdb.connectors.registry import lite_path
from m3vdb.errors import CollectionNotFoundError, InputError, M3VDBError
from m3vdb.schemas import milvus as ms
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.milvus import ColbertLayout, MilvusCapabilities
from m3vdb.schemas.options import MilvusOptions
from m3vdb.schemas.spec import IndexSpec

T = TypeVar("T")

#: The key of the spec in the m3vdb record of a main collection's description.
SPEC_KEY = "spec"
# The record's prefix as ``schemas.milvus.main_description`` writes it ("m3vdb:{...}").
_RECORD_PREFIX = ms.main_description("none", "").split("{", 1)[0]


class MilvusEngine(Engine):
    """A Milvus collection holding BGE-M3 representations (``client`` is the
    ``pymilvus.MilvusClient``). Open it with :meth:`open` (``m3vdb.connect``).

    Writes check every document of a batch (id and text sizes, JSON metadata) before anything
    of it is written; a batch that fails (or is interrupted) leaves no document half-written
    (see ``connectors.milvus.colbert``).
    """

    #: The Milvus Lite file, when m3vdb opened it from a path (its disk is checked before writes).
    lite_file: str | None = None

    database = "Milvus"
    max_k = ms.QUERY_LIMIT

    def __init__(
        self,
        client: Any,
        *,
        collection: str,
        spec: IndexSpec | None,
        default_spec: IndexSpec | None = None,
        capabilities: MilvusCapabilities,
        owns: bool = False,
        create: bool = True,
    ) -> None:
        """Opens (or creates) ``collection`` with ``spec``, else its recorded spec, else
        ``default_spec`` (BGE-M3's); the client and capabilities come from :meth:`open`."""
        super().__init__(
            client,
            collection=collection,
            spec=spec or default_spec or IndexSpec(),
            owns_client=owns,
        )
        self._caps = capabilities
        self._store = Store(client, collection, self._spec, capabilities, self.call)
        self._colbert: ColbertStrategy = self._open_or_create(
            create, spec, default_spec or IndexSpec()
        )

    @classmethod
    def open(
        cls,
        target: Any,
        *,
        collection: str,
        spec: IndexSpec | None,
        default_spec: IndexSpec,
        options: MilvusOptions | None = None,
        create: bool = True,
    ) -> MilvusEngine:
        """Opens ``collection`` in the Milvus ``target``, creating it (and its companion
        collection, indexes, and loading them) when missing, else validating it (see
        ``Engine.open``). ``target``: a ``pymilvus.MilvusClient`` (left open by ``close``) or
        a URL (see the package docstring); ``options``: client settings for a server URL.

        Raises:
            MissingDependencyError: pymilvus (or milvus-lite for a .db file) is not installed.
            InputError: the URL is not understood.
            CollectionNotFoundError: ``create=False`` and the collection (or the Lite file)
                does not exist; nothing is created.
            SchemaMismatchError: the existing collection does not match the spec.
            BackendError: Milvus failed, or the Lite file is in use by another process.
        """
        if not create and isinstance(target, str):
            path = lite_path(target)
            if path is not None and not os.path.exists(path):
                # Opening a Lite file creates it: refuse before that.
                raise CollectionNotFoundError(collection, f"Milvus Lite at {path} (no such file)")
        client, lite, owns = _client_for(target, options or MilvusOptions())
        with closed_on_error(client, owns):
            caps = detect_capabilities(client, lite=lite)
            engine = cls(
                client,
                collection=collection,
                spec=spec,
                default_spec=default_spec,
                capabilities=caps,
                owns=owns,
                create=create,
            )
        path = lite_path(target)
        engine.lite_file = os.path.abspath(path) if path is not None else None
        if caps.lite:
            engine.call_timeout = EMBEDDED_CALL_TIMEOUT  # Milvus Lite's local server
        return engine

    @classmethod
    def drop_collection(
        cls, target: Any, collection: str, *, options: MilvusOptions | None = None
    ) -> bool:
        """Drops ``collection`` and the companion collection it records owning, whatever its
        schema; a collection of a companion's name that it does not own is left alone.
        Returns False when there was no such collection (and, for a Lite file that does not
        exist, creates none)."""
        if isinstance(target, str):
            path = lite_path(target)
            if path is not None and not os.path.exists(path):
                return False
        client, _, owns = _client_for(target, options or MilvusOptions())
        try:
            with quiet_pymilvus():
                if not client.has_collection(collection):
                    return False
                description = client.describe_collection(collection)
                companion = ms.owned_companion(description, IndexSpec())
                if companion is not None and client.has_collection(companion):
                    client.drop_collection(companion)
                client.drop_collection(collection)
            return True
        except M3VDBError:
            raise
        except Exception as exc:
            raise translate_error(exc, f"Milvus drop of {collection!r}") from exc
        finally:
            if owns:
                client.close()

    @classmethod
    def list_collections(
        cls, target: Any, *, options: MilvusOptions | None = None
    ) -> list[CollectionInfo]:
        """Every collection but m3vdb's companion collections, with its entity count and
        recorded spec (creates no Lite file that does not exist)."""
        if isinstance(target, str):
            path = lite_path(target)
            if path is not None and not os.path.exists(path):
                return []
        client, _, owns = _client_for(target, options or MilvusOptions())
        try:
            with quiet_pymilvus():
                out = []
                for name in sorted(client.list_collections()):
                    description = client.describe_collection(name)
                    if _is_companion(description):
                        continue
                    out.append(
                        CollectionInfo(name, _entries(client, name), recorded_spec(description))
                    )
                return out
        except M3VDBError:
            raise
        except Exception as exc:
            raise translate_error(exc, "Milvus collection listing") from exc
        finally:
            if owns:
                client.close()

    # -- properties -----------------------------------------------------------------

    @property
    def capabilities(self) -> MilvusCapabilities:
        """What the server can do, detected when the connector opened."""
        return self._caps

    @property
    def colbert_layout(self) -> ColbertLayout:
        """``"struct"`` (native Array of Structs), ``"companion"`` (token-row collection) or
        ``"none"``."""
        return self._colbert.name

    def is_transient(self, exc: Exception) -> bool:
        return is_transient(exc)

    def translate_error(self, exc: Exception, what: str) -> M3VDBError:
        return translate_error(exc, f"Milvus {what}")

    def is_missing_collection(self, exc: Exception) -> bool:
        from pymilvus.exceptions import MilvusException

        # code 100: collection not found (Lite and servers)
        return isinstance(exc, MilvusException) and exc.code == 100

    def where(self) -> str:
        return "Milvus Lite" if self._caps.lite else "Milvus"

    def call(self, what: str, operation: Callable[[], T]) -> T:
        # pymilvus logs each failed RPC with a traceback; the failure reaches the caller as an
        # m3vdb error instead (one line), so its logging is silenced meanwhile.
        with quiet_pymilvus():
            return super().call(what, operation)

    # -- schema ---------------------------------------------------------------------

    def _open_or_create(
        self, create: bool, given: IndexSpec | None, default: IndexSpec
    ) -> ColbertStrategy:
        store, name = self._store, self._collection
        if not store.exists(name):
            if not create:
                where = "Milvus Lite" if self._caps.lite else "Milvus"
                raise CollectionNotFoundError(name, where)
            self._set_spec(given or default)
            store = self._store
            strategy = STRATEGIES[self._caps.colbert_layout(self._spec)](store)
            # The layout's own storage first: a main collection never exists without it.
            strategy.create_storage()
            try:
                store.create(
                    name,
                    strategy.main_fields(),
                    strategy.main_indexes(),
                    with_spec(strategy.main_description(), self._spec),
                )
            except BaseException:
                strategy.remove_storage()
                raise
            return strategy
        description = store.describe(name)
        self._set_spec(settle_spec(given, recorded_spec(description), default))
        store = self._store
        strategy = STRATEGIES[ms.layout_of(description, self._spec)](
            store, ms.owned_companion(description, self._spec)
        )
        problems = store.problems(
            name, description, strategy.main_fields(), strategy.main_indexes()
        )
        problems += strategy.storage_problems()
        if problems:
            raise self.schema_mismatch(problems)
        store.load(name)
        strategy.load_storage()
        return strategy

    def _set_spec(self, spec: IndexSpec) -> None:
        """Settles the spec (and the store that carries it) before the layout is chosen."""
        if spec.colbert and spec.max_colbert_rows > ms.QUERY_LIMIT:
            raise InputError(
                f"max_colbert_rows={spec.max_colbert_rows} exceeds what one Milvus query returns "
                f"({ms.QUERY_LIMIT}); split long texts into windows"
            )
        ms.check_colbert_precision(spec, self._caps)
        self._spec = spec
        self._store = Store(self._client, self._collection, spec, self._caps, self.call)

    # -- writes ---------------------------------------------------------------------

    def write(
        self, pairs: Sequence[tuple[Document, M3Embedding]], *, fde: np.ndarray | None = None
    ) -> None:
        """Checks Milvus's limits for every document, then lets the layout write the batch."""
        for doc, _ in pairs:
            ms.check_document_limits(doc, lite=self._caps.lite)
        if self.lite_file is not None:
            # a Lite server whose disk fills hangs instead of answering: refuse first
            needed = WRITE_AMPLIFICATION * batch_bytes(pairs) + MARGIN_BYTES
            check_room(os.path.dirname(self.lite_file), needed, f"{len(pairs)} documents")
        self._colbert.write(pairs, fde)

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Deletes these ids and their ColBERT rows; unknown ids are ignored."""
        ids = self._addressable(ids)
        c = self._client
        for chunk in batched(ids, IDS_PER_QUERY):
            # Main entities first: rows without a main entity are invisible to readers. By
            # our escaped expression: pymilvus's ``ids=`` pastes ids unescaped.
            expr = ms.ids_expression(self._spec.fields.id, chunk)
            self.call("delete", partial(c.delete, self._collection, filter=expr))
            self._colbert.delete(chunk)

    def _addressable(self, ids: Sequence[str]) -> list[str]:
        """``ids``, after an InputError for one Milvus cannot address (no stored document has
        one: :func:`m3vdb.schemas.milvus.id_problem`)."""
        for i in ids:
            ms.check_id(i, lite=self._caps.lite)
        return list(ids)

    def delete_where(self, flt: Filter) -> None:
        """Deletes the documents matching ``flt``: their ids are listed first, then deleted as
        by ids, so a layout's ColBERT rows go with them."""
        self.delete_ids([doc.id for doc in self.scan(flt, batch_size=1000)])

    def drop(self) -> None:
        """Drops the collection and what its layout created with it (a companion collection);
        nothing else, whatever its name."""
        self._colbert.drop()
        self._store.drop(self._collection)

    # -- reads ----------------------------------------------------------------------

    def count(self) -> int:
        c = self._client
        rows = self.call(
            "count", lambda: c.query(self._collection, filter="", output_fields=["count(*)"])
        )
        return int(rows[0]["count(*)"])

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids are left out."""
        found = {row[self._spec.fields.id]: row for row in self._main_rows(self._addressable(ids))}
        return [ms.document_from_row(found[i], self._spec) for i in ids if i in found]

    def scan(self, flt: Filter | None, *, batch_size: int) -> Iterator[Document]:
        """Every stored document matching ``flt`` (all of them without one), in pages of
        ``batch_size`` in id order.

        Paged by our own id cursor (:func:`m3vdb.schemas.milvus.after_id_expression`), not by
        pymilvus's ``query_iterator``, which pastes the last id of a page between double
        quotes unescaped: an id holding ``"`` made it retry a parse error forever, or widen
        the filter."""
        names = self._spec.fields
        expr = ms.compile_filter(flt, names.metadata)
        fields = [names.id, *self._colbert.read_fields()]
        c = self._client
        last: str | None = None
        while True:
            cursor = "" if last is None else ms.after_id_expression(names.id, last)
            where = ms.and_expressions(cursor, expr)
            page = self.call(
                "query page",
                partial(
                    c.query,
                    self._collection,
                    filter=where,
                    output_fields=fields,
                    limit=batch_size,
                    # what query_iterator asks for: each page sorted by primary key
                    iterator="True",
                    reduce_stop_for_best="True",
                ),
            )
            for row in page:
                yield ms.document_from_row(row, self._spec)
            if len(page) < batch_size:
                return
            last = str(page[-1][names.id])

    def scan_embeddings(
        self, flt: Filter | None, *, batch_size: int
    ) -> Iterator[list[tuple[Document, M3Embedding]]]:
        """Every stored entry matching ``flt`` with its stored embedding, in id order, one
        batch per page of the main collection; the ColBERT rows come from the layout (the
        Array of Structs field, or the companion rows of the version each entity names)."""
        names = self._spec.fields
        expr = ms.compile_filter(flt, names.metadata)
        vectors = [
            f
            for f, on in ((names.dense, self._spec.dense), (names.sparse, self._spec.sparse))
            if on
        ]
        fields = [names.id, *self._colbert.read_fields(), *vectors]
        fields += [f for f in self._colbert.embedding_fields() if f not in fields]
        c = self._client
        last: str | None = None
        while True:
            cursor = "" if last is None else ms.after_id_expression(names.id, last)
            page = self.call(
                "query page",
                partial(
                    c.query,
                    self._collection,
                    filter=ms.and_expressions(cursor, expr),
                    output_fields=fields,
                    limit=batch_size,
                    iterator="True",
                    reduce_stop_for_best="True",
                ),
            )
            if page:
                yield self._pairs(page)
            if len(page) < batch_size:
                return
            last = str(page[-1][names.id])

    def _pairs(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Document, M3Embedding]]:
        names = self._spec.fields
        arrays = self._colbert.colbert_arrays(rows)
        out = []
        for row in rows:
            doc_id = str(row[names.id])
            emb = ms.embedding_from_rows(
                {k: v for k, v in row.items() if k != names.colbert}, self._spec
            )
            colbert = arrays.get(doc_id) if self._spec.colbert else None
            out.append(
                (
                    ms.document_from_row(row, self._spec),
                    M3Embedding(dense=emb.dense, sparse=emb.sparse, colbert=colbert),
                )
            )
        return out

    def get_embeddings(self, ids: Sequence[str]) -> dict[str, M3Embedding]:
        """The stored embeddings of these ids (for checks and migrations)."""
        ids = self._addressable(check_ids(ids))
        names = self._spec.fields
        vectors = [
            f
            for f, on in ((names.dense, self._spec.dense), (names.sparse, self._spec.sparse))
            if on
        ]
        rows = self._main_rows(ids, [*vectors, *self._colbert.embedding_fields()])
        arrays = self._colbert.colbert_arrays(rows)
        out: dict[str, M3Embedding] = {}
        for row in rows:
            doc_id = str(row[names.id])
            emb = ms.embedding_from_rows(
                {k: v for k, v in row.items() if k != names.colbert}, self._spec
            )
            out[doc_id] = M3Embedding(
                dense=emb.dense, sparse=emb.sparse, colbert=arrays.get(doc_id)
            )
        return out

    def _main_rows(
        self, ids: Sequence[str], extra_fields: Sequence[str] = ()
    ) -> list[Mapping[str, Any]]:
        names = self._spec.fields
        fields = [names.id, *self._colbert.read_fields(), *extra_fields]
        return self._store.query_ids(self._collection, names.id, ids, fields)

    # -- search ---------------------------------------------------------------------

    def run(self, plan: SearchPlan) -> list[Hit]:
        """Runs a validated plan: ``dense`` / ``sparse`` as one ``search`` with the filter;
        ``hybrid`` as one ``hybrid_search`` (each request carrying the filter, fused by
        ``RRFRanker`` or ``WeightedRanker`` in Milvus), reranked by the ColBERT layout when the
        plan asks; ``colbert`` by the layout."""
        expr = ms.compile_filter(plan.filter, self._spec.fields.metadata)
        fields = self._spec.fields
        if plan.mode == "dense":
            return self._single_search(plan.dense, fields.dense, "dense", plan.k, expr)
        if plan.mode == "sparse":
            return self._single_search(plan.sparse, fields.sparse, "sparse", plan.k, expr)
        if plan.mode == "colbert":
            assert plan.colbert is not None  # the plan sets it for this mode
            if plan.fde is not None:
                return self._fde_search(plan, expr)
            return self._colbert.search(plan.colbert, plan.k, expr, plan.candidates)
        return self._hybrid_search(plan, expr)

    def _metric(self, field: str) -> str:
        if field == self._spec.fields.dense:
            return "IP" if self._spec.dense_metric == "ip" else "COSINE"
        return "IP"

    def _single_search(self, vector: Any, field: str, signal: str, k: int, expr: str) -> list[Hit]:
        c = self._client
        result = self.call(
            f"{signal} search",
            lambda: c.search(
                self._collection,
                data=[vector],
                anns_field=field,
                filter=expr,
                limit=k,
                output_fields=self._colbert.read_fields(),
                search_params={"metric_type": self._metric(field)},
            ),
        )
        return [
            self._store.hit(h, float(h["distance"]), {signal: float(h["distance"])})
            for h in result[0]
        ]

    def _fde_search(self, plan: SearchPlan, expr: str) -> list[Hit]:
        """``mode="colbert"`` with a MUVERA first stage: ONE search of the FDE field of the
        main collection (the filter applied there) for ``plan.candidates`` documents, then the
        layout's rerank by exact MaxSim (in Milvus for the struct layout; over the candidates'
        companion rows, read by id, for the companion layout, as hybrid's rerank does)."""
        c, field = self._client, self._spec.fields.colbert_fde
        result = self.call(
            "ColBERT FDE search",
            lambda: c.search(
                self._collection,
                data=[plan.fde],
                anns_field=field,
                filter=expr,
                limit=plan.candidates,
                output_fields=self._colbert.read_fields(),
                search_params={"metric_type": "IP"},
            ),
        )
        assert plan.colbert is not None  # the plan sets it for this mode
        return self._colbert.rerank(plan.colbert, list(result[0]), plan.k, expr, first="fde")

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
        result = self.call(
            "hybrid search",
            lambda: c.hybrid_search(
                self._collection,
                requests,
                ranker=ranker,
                limit=limit,
                output_fields=self._colbert.read_fields(),
            ),
        )
        fused = list(result[0])
        if not plan.rerank:
            return [
                self._store.hit(h, float(h["distance"]), {"fusion": float(h["distance"])})
                for h in fused
            ]
        assert plan.colbert is not None  # the plan sets it when it reranks
        return self._colbert.rerank(plan.colbert, fused, plan.k, expr)


def _client_for(target: Any, options: MilvusOptions) -> tuple[Any, bool | None, bool]:
    """(client, is_lite or None when unknown, owned) for a URL or a MilvusClient passed in."""
    if isinstance(target, str):
        client, lite = client_from_url(target, options)
        return client, lite, True
    import_pymilvus()
    if options.client_settings():
        raise InputError(
            "MilvusOptions configure the client m3vdb creates from a URL; a MilvusClient "
            "passed in keeps its own settings: leave options out"
        )
    return target, None, False


def _record(description: Mapping[str, Any]) -> dict[str, Any] | None:
    """The m3vdb record (a JSON object after ``m3vdb:``) of a schema description."""
    text = str(description.get("description") or "")
    if not text.startswith(_RECORD_PREFIX):
        return None
    try:
        record = json.loads(text[len(_RECORD_PREFIX) :])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def with_spec(description: str, spec: IndexSpec) -> str:
    """A main collection's description (``ms.main_description``) with the spec recorded."""
    prefix, _, body = description.partition("{")
    record = json.loads("{" + body)
    record[SPEC_KEY] = record_json(spec)
    return prefix + json.dumps(record, sort_keys=True, separators=(",", ":"))


def recorded_spec(description: Mapping[str, Any]) -> IndexSpec | None:
    """The spec a main collection recorded in its description; None without one."""
    record = _record(description)
    return None if record is None else spec_from_record_json(record.get(SPEC_KEY))


def _is_companion(description: Mapping[str, Any]) -> bool:
    record = _record(description)
    return record is not None and "colbert_rows_of" in record


def _entries(client: Any, name: str) -> int:
    """Entities of a collection: an exact ``count(*)`` when it is loaded, else Milvus's row
    statistics (which may still count deleted entities until compaction)."""
    try:
        rows = client.query(name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])
    except Exception:  # not loaded: do not load every collection just to list it
        stats = client.get_collection_stats(name)
        return int(stats.get("row_count", 0))
