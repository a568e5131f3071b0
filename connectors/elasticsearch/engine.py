"""Elasticsearch: BGE-M3's outputs in ``dense_vector``, ``sparse_vector`` and ``rank_vectors``
fields of one document, queried through Elasticsearch's own search API.

Targets accepted by :meth:`ElasticsearchEngine.open` (and ``m3vdb.connect``): an
``elasticsearch.Elasticsearch`` client (use this for API keys, TLS and cloud ids),
``elasticsearch://[USER:PASSWORD@]HOST[:PORT]`` (HTTP, default port 9200) or
``elasticsearch+https://...``. See ``schemas.elasticsearch`` for the index layout.

What runs where (every mode is ONE request):

- ``dense``: a ``knn`` query (top k, the filter applied inside the graph search).
- ``sparse``: a ``sparse_vector`` query with the precomputed ``query_vector``, pruning off.
- ``colbert``: ``script_score`` with ``maxSimDotProduct`` over the filtered documents (exact
  scan: rank_vectors has no ANN index); with ``IndexSpec.colbert_fde``, a ``knn`` query on
  the MUVERA ``dense_vector`` for the candidates, rescored by the same MaxSim script (one
  search).
- ``hybrid``, Enterprise or trial licence (Elasticsearch >= 9.0): one ``search`` whose
  retriever is ``rrf`` (``rank_constant = rrf_k``) or ``linear`` (the weights,
  ``normalizer: none``) over a ``knn`` retriever and ``standard`` retrievers (the
  ``sparse_vector`` query, and BM25 on the text when asked), each carrying the filter and
  contributing ``candidate_count(k)`` documents; with ``rerank`` and ColBERT stored, a
  ``rescorer`` retriever rescores the fused top ``candidate_count(k)`` with MaxSim.
- ``hybrid`` with one signal only (a query without sparse weights, or an index storing one
  of dense/sparse) runs like the fallback below (one ``_msearch``, then the MaxSim rerank as
  a second request when asked), since a fusion of one list needs no fusion retriever.
- ``hybrid`` on a Basic licence, where rrf and linear are refused: ONE ``_msearch`` request
  carrying one search per signal (the same filtered top ``candidate_count(k)`` lists), fused by
  m3vdb with the SAME formulas (``m3vdb.schemas.scoring.rrf`` / ``weighted_sum``). No
  paid feature is needed and the results equal the retriever path's. Which method runs is
  detected once (:attr:`ElasticsearchEngine.hybrid_method`) and logged as a warning when
  the fallback is used; fallback hits carry each signal's score in ``signal_scores``.

Scores (see ``connectors.base``): dense = the dot product (Elasticsearch's ``(1 + dot) / 2`` is
converted back), sparse = sum of q_w * stored p_w (stored weights keep 9 significant bits),
colbert = MaxSim SUM, hybrid = the RRF score, the linear score (whose dense term is
Elasticsearch's ``(1 + dot) / 2``), or the MaxSim SUM when reranked.

Writes: ``elasticsearch.helpers.streaming_bulk`` per batch of ``index`` actions (idempotent by
``_id``), item-level 429s retried by the helper with backoff, whole-request transient failures
(connection, 429, 5xx) retried with backoff. Each document is ONE Elasticsearch document, so
no document is ever half-written. When items still fail, ``upsert`` raises a
:class:`BulkWriteError` listing every failed id and reason and the ids of the batch that were
written; the written ones are kept (each is complete, and re-running the upsert is
idempotent) rather than deleted, because a delete would also destroy the previous version of
a document being re-indexed. Later batches are not written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np

from m3vdb.connectors.base import FilterLike, HybridOptions, SearchMode
from m3vdb.connectors.collection import Collection
from m3vdb.connectors.common import batched, closed_on_error, with_retries
from m3vdb.connectors.elasticsearch import queries as esq
from m3vdb.connectors.elasticsearch.bulk import raise_for_bulk_failures
from m3vdb.connectors.engine import (
    CollectionInfo,
    Engine,
    record_json,
    settle_spec,
    spec_from_record_json,
)
from m3vdb.connectors.plan import SearchPlan
from m3vdb.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
    UnsupportedCapabilityError,
)
from m3vdb.schemas import elasticsearch as es
from m3vdb.schemas import scoring
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.elasticsearch import (
    ElasticsearchCapabilities,
    HybridMethod,
)
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.options import MAX_NUM_CANDIDATES, ElasticsearchOptions
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

__all__ = [
    "ElasticsearchCollection",
    "ElasticsearchEngine",
    "client_from_url",
    "detect_capabilities",
]
#: The key of m3vdb's record in the index mapping's ``_meta`` (beside ``schemas``' own key).
RECORD_KEY = "m3vdb_record"

DEFAULT_PORT = 9200
logger = logging.getLogger(__name__)
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _import_client() -> Any:
    return import_optional(
        "elasticsearch",
        package="elasticsearch",
        extra="elasticsearch",
        purpose="The Elasticsearch connector",
    )


# --------------------------------------------------------------------------- errors


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    meta = getattr(exc, "meta", None)
    status = getattr(meta, "status", None)
    return status if isinstance(status, int) else None


def is_transient(exc: Exception) -> bool:
    """Whether a retry may fix ``exc``: connection failures and timeouts, HTTP 408/429/5xx."""
    if isinstance(exc, M3VDBError):
        return exc.retriable
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    client = _import_client()
    if isinstance(exc, client.ApiError):
        return _status(exc) in _TRANSIENT_STATUS
    # ConnectionError / ConnectionTimeout of the client (not SerializationError, TLS errors).
    return isinstance(exc, (client.ConnectionError, client.ConnectionTimeout)) and not isinstance(
        exc, client.SSLError
    )


def _error_detail(exc: Exception) -> tuple[str, str]:
    """(error type, reason) of an ApiError body, falling back to the message."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        root = (error.get("root_cause") or [error])[0]
        return str(root.get("type", error.get("type", ""))), str(
            root.get("reason", error.get("reason", ""))
        )
    return type(exc).__name__, str(getattr(exc, "message", None) or exc)


def translate_error(exc: Exception, what: str) -> M3VDBError:
    """An Elasticsearch client exception as an m3vdb error: 400 -> InputError, a licence
    refusal -> UnsupportedCapabilityError, anything else -> BackendError (retriable when
    :func:`is_transient`)."""
    if isinstance(exc, M3VDBError):
        return exc
    status = _status(exc)
    kind, reason = _error_detail(exc)
    detail = f"HTTP {status} {kind}: {reason}" if status else f"{kind}: {reason}"
    if "license" in reason.lower() and ("non-compliant" in reason or status == 403):
        return UnsupportedCapabilityError(
            f"Elasticsearch refused the {what} for its licence ({detail}); start a trial "
            "(POST _license/start_trial?acknowledge=true) or use a Basic-licence feature"
        )
    if status == 400:
        return InputError(f"Elasticsearch rejected the {what}: {detail}")
    if status == 404 and kind == "index_not_found_exception":
        return BackendError(
            f"{what}: the index does not exist (dropped elsewhere?): {detail}. Open the "
            "connector again to recreate it"
        )
    return BackendError(f"Elasticsearch {what} failed: {detail}", retriable=is_transient(exc))


# --------------------------------------------------------------------------- opening


def client_from_url(url: str) -> Elasticsearch:
    """An ``Elasticsearch`` client for ``elasticsearch[+http|+https]://[USER:PASS@]HOST[:PORT]``."""
    client = _import_client()
    parts = urlsplit(url)
    scheme = {
        "elasticsearch": "http",
        "elasticsearch+http": "http",
        "elasticsearch+https": "https",
    }.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise InputError(
            f"not an Elasticsearch URL: {url!r}; use elasticsearch://HOST:9200 or "
            "elasticsearch+https://USER:PASSWORD@HOST:9200"
        )
    host = f"{scheme}://{parts.hostname}:{parts.port or DEFAULT_PORT}"
    auth = None
    if parts.username:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return client.Elasticsearch(host, basic_auth=auth)  # type: ignore[no-any-return]


def detect_capabilities(client: Any) -> ElasticsearchCapabilities:
    """``GET /`` and ``GET _license``, once. A refused licence call (e.g. no privilege) counts
    as an unknown licence: only Basic features are used."""
    try:
        info = with_retries(
            lambda: client.info(), is_transient=is_transient, what="Elasticsearch GET /"
        )
    except M3VDBError:
        raise
    except Exception as exc:
        raise translate_error(exc, "GET /") from exc
    try:
        licence = with_retries(
            lambda: client.license.get(),
            is_transient=is_transient,
            what="Elasticsearch GET _license",
        )
        licence_body = dict(getattr(licence, "body", licence))
    except Exception as exc:
        logger.warning("GET _license failed (%s); assuming no paid features", exc)
        licence_body = None
    return ElasticsearchCapabilities.from_responses(dict(getattr(info, "body", info)), licence_body)


# --------------------------------------------------------------------------- the engine


class ElasticsearchEngine(Engine):
    """An Elasticsearch index holding BGE-M3 representations. Open it with :meth:`open`
    (``m3vdb.connect``), which returns an :class:`ElasticsearchCollection`.

    Writes check every document of a batch (embeddings, id length, unit norm for dot_product)
    before one ``streaming_bulk`` pass, and raise :class:`BulkWriteError` (listing every
    refused id and reason) when documents were refused; see the module docstring for what a
    failure leaves. The index records its spec in its mapping's ``_meta``.
    """

    database = "Elasticsearch"
    max_k = MAX_NUM_CANDIDATES
    kind = "index"

    def __init__(
        self,
        client: Any,
        *,
        collection: str,
        spec: IndexSpec,
        capabilities: ElasticsearchCapabilities,
        options: ElasticsearchOptions | None = None,
        owns: bool = False,
        create: bool = True,
    ) -> None:
        """Opens (or creates) the index with ``spec`` (already settled by :meth:`open`)."""
        if spec.colbert:
            capabilities.require_rank_vectors()
        options = options or ElasticsearchOptions()
        super().__init__(
            client,
            collection=es.check_index_name(collection),
            spec=spec,
            owns_client=owns,
            attempts=options.max_retries + 1,
        )
        self._caps = capabilities
        self._options = options
        if capabilities.hybrid_method == "client_fusion":
            logger.warning(
                "%s: rrf/linear retrievers need an Enterprise or trial licence and "
                "Elasticsearch >= 9.0; hybrid search fuses one _msearch's per-signal results "
                "in m3vdb (same formulas, one round trip)",
                capabilities.describe(),
            )
        self._open_or_create(create)

    # -- database level -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: Any,
        *,
        collection: str,
        spec: IndexSpec | None,
        default_spec: IndexSpec,
        options: ElasticsearchOptions | None = None,
        create: bool = True,
    ) -> ElasticsearchEngine:
        """Opens the index ``collection``, creating it when missing, else validating it (see
        ``Engine.open``). ``target``: an ``elasticsearch.Elasticsearch`` client (left open by
        ``close``) or a URL (see the module docstring); ``options``: Elasticsearch-specific
        settings (index type, BM25, refresh, ...).

        Raises:
            MissingDependencyError: the elasticsearch client is not installed.
            InputError: the URL or the index name is not usable.
            UnsupportedCapabilityError: ColBERT is asked for and the cluster's version or
                licence has no rank_vectors.
            CollectionNotFoundError: ``create=False`` and the index does not exist.
            SchemaMismatchError: the existing index does not match the spec.
        """
        es.check_index_name(collection)
        client, owns = _client_for(target)
        with closed_on_error(client, owns):
            caps = detect_capabilities(client)
            recorded = None
            if spec is None and client.indices.exists(index=collection):
                recorded = _recorded_spec(_mappings(client, collection))
            return cls(
                client,
                collection=collection,
                spec=settle_spec(spec, recorded, default_spec),
                capabilities=caps,
                options=options or ElasticsearchOptions(),
                owns=owns,
                create=create,
            )

    @classmethod
    def drop_collection(
        cls, target: Any, collection: str, *, options: ElasticsearchOptions | None = None
    ) -> bool:
        """Deletes the index ``collection`` whatever its mapping. Returns False when there was
        none."""
        client, owns = _client_for(target)
        try:
            if not client.indices.exists(index=collection):
                return False
            client.indices.delete(index=collection)
            return True
        except M3VDBError:
            raise
        except Exception as exc:
            raise translate_error(exc, f"delete of index {collection!r}") from exc
        finally:
            if owns:
                client.close()

    @classmethod
    def list_collections(
        cls, target: Any, *, options: ElasticsearchOptions | None = None
    ) -> list[CollectionInfo]:
        """Every index not hidden or internal (names starting with ``.``), with its document
        count and the spec recorded in its mapping's ``_meta``."""
        client, owns = _client_for(target)
        try:
            found = client.indices.get_mapping(index="*", expand_wildcards="open")
            mappings = dict(getattr(found, "body", found))
            out = []
            for name in sorted(mappings):
                if name.startswith("."):
                    continue
                entries = int(client.count(index=name)["count"])
                mapping = (mappings[name] or {}).get("mappings") or {}
                out.append(CollectionInfo(name, entries, _recorded_spec(mapping)))
            return out
        except M3VDBError:
            raise
        except Exception as exc:
            raise translate_error(exc, "index listing") from exc
        finally:
            if owns:
                client.close()

    # -- properties -----------------------------------------------------------------

    @property
    def capabilities(self) -> ElasticsearchCapabilities:
        """The cluster's version and licence, detected when the connector opened."""
        return self._caps

    @property
    def options(self) -> ElasticsearchOptions:
        return self._options

    @property
    def hybrid_method(self) -> HybridMethod:
        """How ``mode="hybrid"`` runs: ``retrievers`` (one search with rrf/linear retrievers)
        or ``client_fusion`` (one _msearch, fused by m3vdb: the Basic-licence fallback)."""
        return self._caps.hybrid_method

    # -- calls ----------------------------------------------------------------------

    def is_transient(self, exc: Exception) -> bool:
        return is_transient(exc)

    def translate_error(self, exc: Exception, what: str) -> M3VDBError:
        return translate_error(exc, what)

    def is_missing_collection(self, exc: Exception) -> bool:
        return _status(exc) == 404 and _error_detail(exc)[0] == "index_not_found_exception"

    def _open_or_create(self, create: bool) -> None:
        c, name = self._client, self._collection
        if not self.call("index check", lambda: bool(c.indices.exists(index=name))):
            if not create:
                raise CollectionNotFoundError(name, "Elasticsearch", kind="index")
            body = es.mapping(self._spec, self._options, self._caps)
            body["_meta"] = {**body.get("_meta", {}), RECORD_KEY: record_json(self._spec)}
            settings = es.index_settings(self._options)
            try:
                self.call(
                    "index creation",
                    lambda: c.indices.create(index=name, mappings=body, settings=settings),
                )
                return
            except M3VDBError as exc:
                # Another process may have created it meanwhile: validate that one.
                if "resource_already_exists" not in str(exc):
                    raise
        mappings = self.call("get mapping", partial(_mappings, c, name))
        problems = es.validate_mapping(mappings, self._spec, self._options)
        if problems:
            raise self.schema_mismatch(
                problems,
                "Open it without a spec (it opens as it was built), with an IndexSpec (and "
                "ElasticsearchOptions) that match, use another index name, or drop it to "
                "rebuild it",
            )

    # -- writes ---------------------------------------------------------------------

    def write(
        self, pairs: Sequence[tuple[Document, M3Embedding]], *, fde: np.ndarray | None = None
    ) -> None:
        """The batch's ``index`` actions in one ``streaming_bulk`` pass (every document checked
        first); raises BulkWriteError when documents were refused."""
        actions = []
        for i, (doc, emb) in enumerate(pairs):
            es.check_document(doc, emb, self._spec)
            actions.append(
                {
                    "_op_type": "index",
                    "_index": self._collection,
                    "_id": doc.id,
                    "_source": es.document_source(
                        doc, emb, self._spec, None if fde is None else fde[i]
                    ),
                }
            )
        self._bulk(actions, "upsert")

    def _bulk(self, actions: list[dict[str, Any]], what: str) -> list[str]:
        helpers = _import_client().helpers
        options = self._options

        def run() -> list[tuple[bool, Mapping[str, Any]]]:
            return list(
                helpers.streaming_bulk(
                    self._client,
                    actions,
                    chunk_size=max(1, len(actions)),
                    raise_on_error=False,
                    raise_on_exception=True,  # whole-request failures: retried below
                    max_retries=options.max_retries,
                    initial_backoff=0.5,
                    max_backoff=30,
                    retry_on_status=(429,),
                    refresh=options.refresh,
                )
            )

        results = self.call(what, run)
        return raise_for_bulk_failures(results, what=what)

    def delete_ids(self, ids: Sequence[str]) -> None:
        """Deletes these ids; unknown ids are ignored."""
        for chunk in batched(ids, 1000):
            actions = [{"_op_type": "delete", "_index": self._collection, "_id": i} for i in chunk]
            self._bulk(actions, "delete")

    def delete_where(self, flt: Filter) -> None:
        """One ``delete_by_query`` of the filter (refreshed as ``options.refresh`` asks)."""
        filters = es.compile_filter(flt, self._spec)
        c = self._client
        self.call(
            "delete by query",
            lambda: c.delete_by_query(
                index=self._collection,
                query={"bool": {"filter": filters}},
                refresh=bool(self._options.refresh),
                conflicts="proceed",
            ),
        )

    def drop(self) -> None:
        """Deletes the index."""
        c = self._client
        self.call(
            "index deletion",
            lambda: c.indices.delete(index=self._collection, ignore_unavailable=True),
        )

    def refresh(self) -> None:
        """Makes every write visible to search (after writes with ``refresh=False``)."""
        self.call("refresh", lambda: self._client.indices.refresh(index=self._collection))

    # -- reads ----------------------------------------------------------------------

    def count(self) -> int:
        result = self.call("count", lambda: self._client.count(index=self._collection))
        return int(result["count"])

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids are left out."""
        found: dict[str, Document] = {}
        fields = es.source_fields(self._spec)
        for chunk in batched(list(dict.fromkeys(ids)), 1000):
            result = self.call(
                "mget",
                partial(
                    self._client.mget, index=self._collection, ids=chunk, source_includes=fields
                ),
            )
            for doc in result["docs"]:
                if doc.get("found"):
                    found[str(doc["_id"])] = es.document_from_hit(doc, self._spec)
        return [found[i] for i in ids if i in found]

    def scan(self, flt: Filter | None, *, batch_size: int) -> Iterator[Document]:
        """Every stored document matching ``flt`` (all of them without one), read with
        ``elasticsearch.helpers.scan`` (a point-in-time scroll) in pages of ``batch_size``."""
        helpers = _import_client().helpers
        filters = es.compile_filter(flt, self._spec)
        body = {"query": {"bool": {"filter": filters}} if filters else {"match_all": {}}}
        hits = helpers.scan(
            self._client,
            index=self._collection,
            query=body,
            size=batch_size,
            _source=es.source_fields(self._spec),
        )
        try:
            for hit in hits:
                yield es.document_from_hit(hit, self._spec)
        except M3VDBError:
            raise
        except Exception as exc:
            raise self.translate_error(exc, "scan") from exc

    def scan_embeddings(
        self, flt: Filter | None, *, batch_size: int
    ) -> Iterator[list[tuple[Document, M3Embedding]]]:
        """Refused: m3vdb maps the vectors out of ``_source`` (``_source.excludes``), and a
        ``sparse_vector`` keeps only 9 significant bits of each weight, so an index cannot
        give back the embeddings written to it."""
        raise UnsupportedCapabilityError(
            f"Elasticsearch index {self._collection!r} cannot give its stored embeddings back: "
            "m3vdb keeps the vectors out of _source (and sparse_vector keeps only 9 significant "
            "bits of each weight), so it cannot be exported or copied from. Loading INTO "
            "Elasticsearch works: export or copy from the Milvus or Qdrant collection you "
            "indexed, or write the file with `m3vdb encode` and `m3vdb load` it"
        )

    # -- search ---------------------------------------------------------------------

    def run(self, plan: SearchPlan) -> list[Hit]:
        filters = es.compile_filter(plan.filter, self._spec)
        spec = self._spec
        if plan.mode == "dense":
            assert plan.dense is not None
            body = esq.knn_query(spec, plan.dense, plan.k, self._options, filters)
        elif plan.mode == "sparse":
            assert plan.sparse is not None
            body = esq.sparse_query(spec, plan.sparse, self._options, filters)
        elif plan.mode == "colbert" and plan.fde is not None:
            assert plan.colbert is not None
            parts = esq.fde_search(
                spec, plan.fde, plan.colbert, plan.candidates, self._options, filters
            )
            response = self._search("ColBERT FDE search", **parts, size=plan.k)
            return [self._hit(h, "colbert", plan) for h in response["hits"]["hits"]]
        elif plan.mode == "colbert":
            assert plan.colbert is not None
            body = esq.colbert_query(spec, plan.colbert, filters)
        else:
            return self._hybrid(plan, plan.text, filters)
        response = self._search(f"{plan.mode} search", query=body, size=plan.k)
        return [self._hit(h, plan.mode, plan) for h in response["hits"]["hits"]]

    def _search(self, what: str, **body: Any) -> Mapping[str, Any]:
        fields = es.source_fields(self._spec)
        result = self.call(
            what,
            lambda: self._client.search(index=self._collection, source=fields, **body),
        )
        return dict(getattr(result, "body", result))

    def _score(self, raw: float, signal: str, plan: SearchPlan) -> float:
        if signal == "dense":
            return es.dense_from_es(raw)
        if signal == "colbert":
            assert plan.colbert is not None
            return es.colbert_from_es(raw, len(plan.colbert))
        return float(raw)

    def _hit(
        self,
        raw: Mapping[str, Any],
        signal: str,
        plan: SearchPlan,
        extra: Mapping[str, float] | None = None,
    ) -> Hit:
        doc = es.document_from_hit(raw, self._spec)
        score = self._score(float(raw["_score"]), signal, plan)
        signals = {signal: score, **(extra or {})}
        return Hit(doc.id, score, doc.text, doc.metadata, signals)

    def _signals(
        self, plan: SearchPlan, text: str | None, filters: list[dict[str, Any]]
    ) -> list[esq.Signal]:
        spec, opts = self._spec, self._options
        assert plan.dense is not None  # hybrid plans carry dense and sparse
        signals = [
            esq.Signal(
                "dense",
                esq.knn_query(spec, plan.dense, plan.candidates, opts, filters),
                plan.weights[0],
            )
        ]
        if plan.sparse:  # an empty sparse query matches nothing: leave it out
            body = esq.sparse_query(spec, plan.sparse, opts, filters)
            signals.append(esq.Signal("sparse", body, plan.weights[1]))
        if text is not None:
            signals.append(
                esq.Signal("bm25", esq.bm25_query(spec, text, filters), opts.bm25_weight)
            )
        return signals

    def _hybrid(
        self, plan: SearchPlan, text: str | None, filters: list[dict[str, Any]]
    ) -> list[Hit]:
        signals = self._signals(plan, text, filters)
        if self.hybrid_method == "retrievers" and len(signals) > 1:
            return self._hybrid_retrievers(plan, signals)
        return self._hybrid_client_fusion(plan, signals, filters)

    def _hybrid_retrievers(self, plan: SearchPlan, signals: list[esq.Signal]) -> list[Hit]:
        rows = plan.colbert if plan.rerank else None
        rescore = esq.rescore(self._spec, rows, plan.candidates) if rows is not None else None
        retriever = esq.hybrid_retriever(
            signals,
            fusion=plan.fusion,
            rrf_k=plan.rrf_k,
            candidates=plan.candidates,
            rerank=rescore,
        )
        response = self._search("hybrid search", retriever=retriever, size=plan.k)
        signal = "colbert" if rows is not None else "fusion"
        return [self._hit(h, signal, plan) for h in response["hits"]["hits"]]

    def _hybrid_client_fusion(
        self, plan: SearchPlan, signals: list[esq.Signal], filters: list[dict[str, Any]]
    ) -> list[Hit]:
        """One _msearch (a search per signal), fused here with Elasticsearch's formulas."""
        fields = es.source_fields(self._spec)
        searches: list[dict[str, Any]] = []
        for s in signals:
            searches += [{}, {"query": s.query, "size": plan.candidates, "_source": fields}]
        result = self.call(
            "hybrid _msearch",
            lambda: self._client.msearch(index=self._collection, searches=searches),
        )
        lists: list[dict[str, float]] = []  # per signal, in Elasticsearch's rank order
        raw_hits: dict[str, Mapping[str, Any]] = {}
        per_signal: dict[str, dict[str, float]] = {}
        for s, response in zip(signals, dict(getattr(result, "body", result))["responses"]):
            if "error" in response:
                error = _MsearchError(response)
                if self.is_missing_collection(error):
                    raise CollectionNotFoundError(self._collection, "Elasticsearch", kind="index")
                raise translate_error(error, f"hybrid _msearch ({s.name})")
            scores: dict[str, float] = {}
            for h in response["hits"]["hits"]:
                doc_id = str(h["_id"])
                scores[doc_id] = float(h["_score"])  # as Elasticsearch ranks (knn: (1+dot)/2)
                raw_hits.setdefault(doc_id, h)
                converted = self._score(float(h["_score"]), s.name, plan)
                per_signal.setdefault(doc_id, {})[s.name] = converted
            lists.append(scores)
        if plan.fusion == "rrf":
            fused = scoring.rrf([list(scores) for scores in lists], plan.rrf_k)
        else:
            fused = scoring.weighted_sum(lists, [s.weight for s in signals])
        order = sorted(fused, key=lambda i: (-fused[i], i))
        if not plan.rerank:
            hits = []
            for doc_id in order[: plan.k]:
                doc = es.document_from_hit(raw_hits[doc_id], self._spec)
                signal_scores = {**per_signal[doc_id], "fusion": fused[doc_id]}
                hits.append(Hit(doc.id, fused[doc_id], doc.text, doc.metadata, signal_scores))
            return hits
        return self._rerank(plan, order[: plan.candidates], fused, filters)

    def _rerank(
        self,
        plan: SearchPlan,
        ids: list[str],
        fused: Mapping[str, float],
        filters: list[dict[str, Any]],
    ) -> list[Hit]:
        """MaxSim over the fused candidates (the fallback path's second request)."""
        if not ids:
            return []
        rows, k = plan.colbert, plan.k
        assert rows is not None  # a reranking plan carries the query's rows
        _, query_dsl, _ = es.dsl()
        body = esq.colbert_query(self._spec, rows, [query_dsl.Ids(values=ids).to_dict(), *filters])
        response = self._search("ColBERT rerank", query=body, size=min(k, len(ids)))
        return [
            self._hit(h, "colbert", plan, {"fusion": fused[str(h["_id"])]})
            for h in response["hits"]["hits"]
        ]


class _MsearchError(Exception):
    """One failed search of an _msearch response, shaped like an ApiError for translation."""

    def __init__(self, response: Mapping[str, Any]) -> None:
        super().__init__(str(response.get("error")))
        self.status_code = int(response.get("status", 500))
        self.body = response


class ElasticsearchCollection(Collection):
    """The Collection of an Elasticsearch index: ``search`` also takes ``bm25``."""

    def search(
        self,
        query: str | M3Embedding,
        k: int = 10,
        *,
        mode: SearchMode = "hybrid",
        filter: FilterLike = None,
        hybrid: HybridOptions | None = None,
        group: bool = False,
        bm25: bool | None = None,
    ) -> list[Hit]:
        """Top-``k`` documents in one request; see the module docstring for what runs where
        and ``Collection.search`` for ``group``.

        Args:
            bm25: add BM25 over the text to the hybrid signals (default:
                ``ElasticsearchOptions.bm25``); needs a text query.

        Raises:
            InputError: bad ``k``, mode, options or filter, or a mode needing an output the
                index does not store.
            UnsupportedCapabilityError: the cluster's licence refused the request.
            BackendError: Elasticsearch failed.
        """
        engine = self.engine
        assert isinstance(engine, ElasticsearchEngine)  # this class is made for one
        use_bm25 = engine.options.bm25 if bm25 is None else bm25
        if use_bm25 and mode == "hybrid" and not isinstance(query, str):
            raise InputError("bm25=True needs a text query (an M3Embedding has no text)")

        def with_bm25(plan: SearchPlan) -> SearchPlan:
            # the plan's text is what BM25 searches: none unless BM25 is on
            return replace(plan, text=plan.text if use_bm25 else None)

        return self._search(
            query, k, mode=mode, filter=filter, hybrid=hybrid, group=group, adjust=with_bm25
        )


ElasticsearchEngine.collection_type = ElasticsearchCollection


def _client_for(target: Any) -> tuple[Any, bool]:
    """(client, owned) for a URL or an Elasticsearch client passed in."""
    if isinstance(target, str):
        return client_from_url(target), True
    _import_client()
    return target, False


def _mappings(client: Any, index: str) -> dict[str, Any]:
    found = client.indices.get_mapping(index=index)
    return dict((dict(getattr(found, "body", found)).get(index) or {}).get("mappings") or {})


def _recorded_spec(mappings: Mapping[str, Any]) -> IndexSpec | None:
    return spec_from_record_json((mappings.get("_meta") or {}).get(RECORD_KEY))
