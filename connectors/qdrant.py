"""Qdrant: BGE-M3's outputs as named dense, sparse and multivector (MaxSim) vectors of one
point, queried with ``query_points`` in one round trip.

Targets accepted by :func:`open_connector` (and so by ``connectors.connect``):

- a ``qdrant_client.QdrantClient`` (any mode; use this for API keys and other options),
- ``qdrant+memory://``: local mode in memory (Qdrant's Python engine, brute force),
- ``qdrant+local:PATH``: local mode persisted in the folder PATH,
- ``qdrant://HOST:PORT`` / ``qdrant+http://HOST:PORT``: a server over REST,
- ``qdrant+https://HOST:PORT``: a server over REST with TLS.

Hybrid search is ONE ``query_points`` call (see :meth:`QdrantConnector._run`)::

    query_points(
        prefetch=[Prefetch(                       # only when reranking by ColBERT
            prefetch=[Prefetch(dense, filter, limit=C), Prefetch(sparse, filter, limit=C)],
            query=RrfQuery(Rrf(k=rrf_k + 1)) | FormulaQuery(w_d*$score[0] + w_s*$score[1]),
            filter, limit=C,
        )],
        query=colbert_rows, using="colbert",      # MaxSim over the fused candidates
        query_filter=filter, limit=k,
    )
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from m3vdb.connectors.base import FilterLike
from m3vdb.connectors.common import BaseConnector, closed_on_error, resolve_spec
from m3vdb.connectors.plan import SearchPlan
from m3vdb.schemas import qdrant as qschema
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
)
from m3vdb.schemas.filters import parse_filter
from m3vdb.schemas.options import QdrantOptions
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

    from m3vdb.schemas.encoding import Encoder

# HTTP statuses a retry may fix: rate limit, server errors, gateway and timeout failures.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}


def _client_class() -> type[QdrantClient]:
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        qschema.qdrant_models()  # raises MissingDependencyError with the pip command
        raise
    return QdrantClient


def client_options(target: str) -> dict[str, str]:
    """The ``QdrantClient`` keyword arguments for a URL form of the module docstring."""
    scheme, _, rest = target.partition(":")
    scheme = scheme.lower()
    rest = rest[2:] if rest.startswith("//") else rest
    if scheme == "qdrant+memory":
        return {"location": ":memory:"}
    if scheme == "qdrant+local":
        if not rest:
            raise InputError(f"{target!r} names no folder; use qdrant+local:PATH")
        return {"path": rest}
    if scheme in ("qdrant", "qdrant+http", "qdrant+https"):
        if not rest:
            raise InputError(f"{target!r} names no host; use qdrant://HOST:PORT")
        protocol = "https" if scheme == "qdrant+https" else "http"
        return {"url": f"{protocol}://{rest}"}
    raise InputError(
        f"{target!r} is not a Qdrant URL; use qdrant+memory://, qdrant+local:PATH, "
        "qdrant://HOST:PORT or qdrant+https://HOST:PORT"
    )


def client_from_target(target: Any, options: QdrantOptions | None = None) -> QdrantClient:
    """A QdrantClient for a URL form of the module docstring, or ``target`` itself."""
    client_class = _client_class()
    options = options or QdrantOptions()
    if isinstance(target, client_class):
        if options.client_settings():
            raise InputError(
                "QdrantOptions configure the client m3vdb creates from a URL; a QdrantClient "
                "passed in keeps its own settings: leave options out"
            )
        return target
    if not isinstance(target, str):
        raise InputError(
            f"cannot open Qdrant from a {type(target).__name__}; pass a QdrantClient or a URL "
            "(qdrant+memory://, qdrant+local:PATH, qdrant://HOST:PORT, qdrant+https://HOST:PORT)"
        )
    where = client_options(target)
    if "url" not in where and options.client_settings():
        raise InputError(
            f"QdrantOptions {options} configure a Qdrant server client; local mode ({target}) "
            "takes none: leave options out"
        )
    if "location" in where:
        return client_class(location=where["location"])
    if "path" in where:
        return _open_local_folder(client_class, where["path"])
    return client_class(
        url=where["url"],
        api_key=options.api_key,
        timeout=options.timeout,
        prefer_grpc=options.prefer_grpc,
    )


def _open_local_folder(client_class: type[QdrantClient], folder: str) -> QdrantClient:
    """Local mode on ``folder``; a folder another client holds is a BackendError that says so.

    Local mode takes an exclusive lock on the folder (``.lock``) for the client's lifetime, so
    a second client, in another process or in this one, cannot open it.
    """
    try:
        return client_class(path=folder)
    except RuntimeError as exc:
        if not _is_lock_conflict(exc):
            raise
        raise BackendError(
            f"the Qdrant local folder {folder!r} is in use by another process (or another open "
            "client in this one): local mode allows one client per folder. Close the other "
            "client or stop that process, then open it again; for concurrent access from "
            "several processes run a Qdrant server (qdrant://HOST:PORT)",
            retriable=False,
        ) from exc


def _is_lock_conflict(exc: RuntimeError) -> bool:
    """Whether local mode refused the folder because its lock is held."""
    context = exc.__context__
    if context is not None and type(context).__name__ == "LockException":
        return True  # portalocker's; the message below may change between client versions
    return "already accessed" in str(exc)


def is_local(client: QdrantClient) -> bool:
    """True for local mode (Qdrant's Python engine), which keeps no payload indexes."""
    options = client.init_options
    return options.get("location") == ":memory:" or options.get("path") is not None


def is_transient(exc: Exception) -> bool:
    """Whether a retry may fix ``exc``: connection failures, timeouts, 408/429/5xx, and the
    gRPC codes UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED."""
    if isinstance(exc, M3VDBError):
        return exc.retriable
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    if isinstance(exc, ResponseHandlingException):
        # Raised for transport failures (the httpx error is its source); a parse error of a
        # response that did arrive is not worth retrying.
        return _is_transport_error(exc.source)
    if _is_transport_error(exc):
        return True
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            return getattr(code(), "name", "") in _TRANSIENT_GRPC
        except Exception:  # a non-grpc object with a code() method
            return False
    return False


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import httpx
    except ImportError:
        return False
    return isinstance(exc, httpx.TransportError)


def translate_error(exc: Exception, what: str) -> M3VDBError:
    """The m3vdb error for a native Qdrant error, the same type in local and server mode.

    Rejected input (HTTP 400/422, gRPC INVALID_ARGUMENT, local mode's ValueError) becomes
    InputError; everything else a BackendError, retriable when :func:`is_transient` says so.
    """
    if isinstance(exc, M3VDBError):
        return exc
    from qdrant_client.http.exceptions import UnexpectedResponse

    message = str(exc)
    if isinstance(exc, UnexpectedResponse):
        content = exc.content.decode("utf-8", "replace") if exc.content else exc.reason_phrase
        message = f"HTTP {exc.status_code}: {content}"
        if exc.status_code in (400, 422):
            return InputError(f"Qdrant rejected the {what}: {message}")
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            if getattr(code(), "name", "") == "INVALID_ARGUMENT":
                return InputError(f"Qdrant rejected the {what}: {message}")
        except Exception:  # not a grpc error after all
            pass
    if isinstance(exc, ValueError) and "not found" not in message:
        return InputError(f"Qdrant rejected the {what}: {message}")
    return BackendError(f"Qdrant {what} failed: {message}", retriable=is_transient(exc))


class QdrantConnector(BaseConnector["QdrantClient"]):
    """A Qdrant collection holding BGE-M3's outputs in native named vectors.

    Build it with :func:`open_connector` or ``connectors.connect``, which create the
    collection or validate an existing one. Implements ``connectors.base.Connector``.
    ``upsert`` validates each batch completely (types, shapes, NaN, sparse weights, Qdrant's
    multivector cap) before any of it is written in one ``upsert(wait=True)``.
    """

    _database = "Qdrant"

    def __init__(
        self,
        client: QdrantClient,
        *,
        collection: str,
        spec: IndexSpec,
        encoder: Encoder | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__(
            client, collection=collection, spec=spec, encoder=encoder, owns_client=owns_client
        )
        # Capabilities, detected once.
        self._local = is_local(client)
        models = qschema.qdrant_models()
        self._rrf_has_k = hasattr(models, "Rrf") and "k" in getattr(models.Rrf, "model_fields", {})
        self._formula = hasattr(models, "FormulaQuery")

    # -- plumbing -------------------------------------------------------------------------

    def _is_transient(self, exc: Exception) -> bool:
        return is_transient(exc)

    def _is_missing_collection(self, exc: Exception) -> bool:
        # local mode: ValueError("Collection X not found"); server: 404 "... doesn't exist"
        text = str(exc)
        if isinstance(exc, ValueError) and text == f"Collection {self._collection} not found":
            return True
        status = getattr(exc, "status_code", None)
        return status == 404 and "doesn't exist" in text

    def _where(self) -> str:
        return "Qdrant (local mode)" if is_local(self._client) else "Qdrant"

    def _translate_error(self, exc: Exception, what: str) -> M3VDBError:
        return translate_error(exc, what)

    def ensure_collection(self, *, create: bool = True) -> None:
        """Creates the collection, or checks that the existing one matches the spec.

        Args:
            create: with False, a missing collection raises CollectionNotFoundError.

        Raises:
            CollectionNotFoundError: ``create=False`` and the collection does not exist.
            SchemaMismatchError: the existing collection differs from the spec.
        """
        exists = self._call(
            "collection check", lambda: self._client.collection_exists(self._collection)
        )
        if not exists and not create:
            where = "Qdrant (local mode)" if self._local else "Qdrant"
            raise CollectionNotFoundError(self._collection, where)
        if not exists:
            try:
                self._call(
                    "collection creation",
                    lambda: self._client.create_collection(
                        self._collection,
                        vectors_config=qschema.vectors_config(self._spec),
                        sparse_vectors_config=qschema.sparse_vectors_config(self._spec) or None,
                    ),
                )
            except M3VDBError:
                # Another process may have created it in the meantime: validate that one.
                if not self._client.collection_exists(self._collection):
                    raise
                self._validate()
        else:
            self._validate()
        if not self._local:  # local mode has no payload indexes (and warns on each)
            schema = (
                self._call(
                    "collection info", lambda: self._client.get_collection(self._collection)
                ).payload_schema
                or {}
            )
            for key, kind in qschema.payload_indexes(self._spec):
                if key not in schema:
                    make_index = partial(
                        self._client.create_payload_index,
                        self._collection,
                        field_name=key,
                        field_schema=kind,
                        wait=True,
                    )
                    self._call("payload index creation", make_index)

    def _validate(self) -> None:
        info = self._call("collection info", lambda: self._client.get_collection(self._collection))
        problems = qschema.validate_collection(
            info, self._spec, check_payload_indexes=not self._local
        )
        if problems:
            raise self._schema_mismatch(
                problems,
                "Open it with an IndexSpec that matches it (dimensions, metric, field names, "
                "precision), or use another collection name, or drop it to rebuild it.",
            )

    # -- writes ---------------------------------------------------------------------------

    def _write_batch(self, pairs: Sequence[tuple[Document, M3Embedding]]) -> None:
        """One ``upsert(wait=True)`` of the batch's points (built, and so checked, first)."""
        points = [qschema.to_point(doc, emb, self._spec) for doc, emb in pairs]
        write = partial(self._client.upsert, self._collection, points=points, wait=True)
        self._call("upsert", write)

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes these ids; unknown ids are ignored."""
        point_ids = [qschema.point_id(i) for i in self._check_ids(ids)]
        if not point_ids:
            return
        m = qschema.qdrant_models()
        self._call(
            "delete",
            lambda: self._client.delete(
                self._collection, points_selector=m.PointIdsList(points=point_ids), wait=True
            ),
        )

    def drop(self) -> None:
        """Deletes the collection."""
        self._call("collection drop", lambda: self._client.delete_collection(self._collection))

    # -- reads ----------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids left out."""
        ids = self._check_ids(ids)
        if not ids:
            return []
        records = self._call(
            "retrieve",
            lambda: self._client.retrieve(
                self._collection,
                ids=[qschema.point_id(i) for i in ids],
                with_payload=True,
                with_vectors=False,
            ),
        )
        found = {}
        for record in records:
            doc = qschema.document_from_payload(record.payload, self._spec)
            found[doc.id] = doc
        return [found[i] for i in ids if i in found]

    def scan(self, filter: FilterLike = None, *, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document matching ``filter`` (all of them without one), scrolled in
        pages of ``batch_size``; order unspecified."""
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        qfilter = qschema.compile_filter(parse_filter(filter), self._spec)
        offset: Any = None
        while True:
            records, offset = self._call(
                "scroll",
                partial(
                    self._client.scroll,
                    self._collection,
                    scroll_filter=qfilter,
                    limit=batch_size,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                ),
            )
            for record in records:
                yield qschema.document_from_payload(record.payload, self._spec)
            if offset is None:
                return

    def count(self) -> int:
        """Number of documents stored (exact count)."""
        result = self._call("count", lambda: self._client.count(self._collection, exact=True))
        return int(result.count)

    def _run(self, plan: SearchPlan) -> list[Hit]:
        """ONE ``query_points`` call; ``filter`` applies to every stage.

        Modes and scores:

        - ``dense``: the dense vector; score = dot product (or cosine).
        - ``sparse``: the sparse vector; score = sum of q_w * p_w over shared token ids.
        - ``colbert``: the multivector, MaxSim; score = SUM over query rows of the best dot
          (FlagEmbedding's colbert score is this divided by the number of query rows).
        - ``hybrid``: prefetch dense and sparse candidates (``plan.candidates`` each,
          filtered), fuse them in Qdrant, and, with ``rerank``, rerank the fused candidates by
          MaxSim in the same call (nested prefetch); the score is then the MaxSim sum.

          - ``fusion="rrf"``: ``Rrf(k=rrf_k + 1)``. Qdrant's RRF is 1 / (k + position) with a
            0-based position, so k + 1 gives 1 / (rrf_k + rank) with the 1-based rank, the
            formula of Milvus and Elasticsearch. Clients without ``Rrf(k=...)`` fall back
            to ``Fusion.RRF`` and Qdrant's fixed k = 2 (rrf_k = 1), with a warning.
          - ``fusion="weighted"``: a ``FormulaQuery`` ``w_dense * $score[0] + w_sparse *
            $score[1]`` with 0 for a candidate missing from one list: the raw weighted sum
            of BGE-M3's own ``compute_score``. (Qdrant's other score fusion, DBSF, takes no
            weights, so it is not used.)
        """
        spec = self._spec
        queries = self._native_queries(plan)
        qfilter = qschema.compile_filter(plan.filter, spec)
        m = qschema.qdrant_models()
        if plan.mode == "hybrid":
            request = self._hybrid_request(queries, plan, qfilter, m)
            signal = "colbert" if plan.rerank else "fusion"
        else:
            request = {"query": queries[plan.mode], "using": getattr(spec.fields, plan.mode)}
            signal = plan.mode
        response = self._call(
            "search",
            lambda: self._client.query_points(
                self._collection,
                prefetch=request.get("prefetch"),
                query=request["query"],
                using=request.get("using"),
                query_filter=qfilter,
                limit=plan.k,
                with_payload=True,
                with_vectors=False,
            ),
        )
        hits = []
        for point in response.points:
            doc = qschema.document_from_payload(point.payload, spec)
            score = float(point.score)
            hits.append(Hit(doc.id, score, doc.text, doc.metadata, {signal: score}))
        return hits

    def _native_queries(self, plan: SearchPlan) -> dict[str, Any]:
        """signal -> the plan's query vector in Qdrant's form; "sparse" is left out when no
        weight is > 0."""
        queries: dict[str, Any] = {}
        if plan.dense is not None:
            queries["dense"] = plan.dense.tolist()
        if plan.sparse:
            queries["sparse"] = qschema.sparse_vector(plan.sparse)
        if plan.colbert is not None:
            queries["colbert"] = plan.colbert.tolist()
        return queries

    def _hybrid_request(
        self,
        queries: dict[str, Any],
        plan: SearchPlan,
        qfilter: models.Filter | None,
        m: Any,
    ) -> dict[str, Any]:
        """prefetch/query/using of the one hybrid query_points call."""
        spec = self._spec
        stages = []
        weights = []
        for signal, weight in (("dense", plan.weights[0]), ("sparse", plan.weights[1])):
            if signal not in queries:
                continue
            stages.append(
                m.Prefetch(
                    query=queries[signal],
                    using=getattr(spec.fields, signal),
                    filter=qfilter,
                    limit=plan.candidates,
                )
            )
            weights.append(float(weight))
        fusion = self._fusion_query(plan, weights, m)
        if not plan.rerank:
            return {"prefetch": stages, "query": fusion}
        fused = m.Prefetch(prefetch=stages, query=fusion, filter=qfilter, limit=plan.candidates)
        return {
            "prefetch": [fused],
            "query": queries["colbert"],
            "using": spec.fields.colbert,
        }

    def _fusion_query(self, plan: SearchPlan, weights: list[float], m: Any) -> Any:
        if plan.fusion == "weighted":
            if not self._formula:
                raise InputError(
                    "fusion='weighted' needs FormulaQuery (qdrant-client >= 1.14 and server "
                    ">= 1.14); upgrade or use fusion='rrf'"
                )
            terms = [
                m.MultExpression(mult=[weight, f"$score[{i}]"]) for i, weight in enumerate(weights)
            ]
            # A candidate found by one signal only scores 0 for the other, as in a plain sum.
            return m.FormulaQuery(
                formula=m.SumExpression(sum=terms),
                defaults={f"$score[{i}]": 0.0 for i in range(len(weights))},
            )
        if self._rrf_has_k:
            return m.RrfQuery(rrf=m.Rrf(k=plan.rrf_k + 1))
        warnings.warn(
            f"this qdrant-client has no Rrf(k=...); hybrid search uses Qdrant's fixed RRF "
            f"k=2 (HybridOptions.rrf_k=1), not rrf_k={plan.rrf_k}. Upgrade qdrant-client.",
            stacklevel=3,
        )
        return m.FusionQuery(fusion=m.Fusion.RRF)


def open_connector(
    target: Any,
    *,
    collection: str,
    encoder: Encoder | None = None,
    spec: IndexSpec | None = None,
    options: QdrantOptions | None = None,
    create: bool = True,
) -> QdrantConnector:
    """Opens a Qdrant collection, creating it if missing, else validating it against ``spec``.

    Args:
        target: a ``QdrantClient`` (left open by ``close``) or a URL (see the module docstring).
        collection: the collection name.
        encoder: encodes texts on upsert and search (optional with precomputed embeddings).
        spec: what to store; defaults to all outputs at the encoder's dimensions.
        options: client settings for a server URL (API key, timeout, gRPC).
        create: create the collection when it is missing; with False, a missing collection
            (or local-mode folder) raises CollectionNotFoundError and nothing is created.

    Raises:
        MissingDependencyError: qdrant-client is not installed.
        InputError: the target or the collection name is not usable.
        CollectionNotFoundError: ``create=False`` and the collection does not exist.
        SchemaMismatchError: the existing collection (or the encoder) does not match ``spec``.
    """
    spec = resolve_spec(collection, encoder, spec)
    if not create and isinstance(target, str):
        folder = client_options(target).get("path")
        if folder is not None and not os.path.exists(folder):
            # Local mode creates its folder on opening: refuse before that.
            raise CollectionNotFoundError(
                collection, f"Qdrant local mode at {folder} (no such folder)"
            )
    client = client_from_target(target, options)
    owns_client = client is not target
    with closed_on_error(client, owns_client):
        connector = QdrantConnector(
            client, collection=collection, spec=spec, encoder=encoder, owns_client=owns_client
        )
        connector.ensure_collection(create=create)
    return connector


def drop_collection(target: Any, collection: str, *, options: QdrantOptions | None = None) -> bool:
    """Drops ``collection`` whatever its schema (e.g. one built for another model, which
    ``open_connector`` refuses to open). Returns False when there was none (and creates no
    local-mode folder that does not exist)."""
    if isinstance(target, str):
        folder = client_options(target).get("path")
        if folder is not None and not os.path.exists(folder):
            return False
    client = client_from_target(target, options)
    try:
        if not client.collection_exists(collection):
            return False
        client.delete_collection(collection)
        return True
    except M3VDBError:
        raise
    except Exception as exc:
        raise translate_error(exc, f"drop of {collection!r}") from exc
    finally:
        if client is not target:
            client.close()
