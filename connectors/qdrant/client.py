"""Qdrant over ``qdrant-client``: BGE-M3's outputs as named dense, sparse and multivector
(MaxSim) vectors of one point, queried with ONE ``query_points`` (the plan of
:mod:`m3vdb.connectors.qdrant.layout`, shared with the edge engine).

Targets accepted by :meth:`QdrantEngine.open` (and so by ``m3vdb.connect``):

- a ``qdrant_client.QdrantClient`` (any mode; use this for API keys and other options),
- ``qdrant+memory://``: local mode in memory (Qdrant's Python engine, brute force),
- ``qdrant+local:PATH``: local mode persisted in the folder PATH,
- ``qdrant://HOST:PORT`` / ``qdrant+http://HOST:PORT``: a server over REST,
- ``qdrant+https://HOST:PORT``: a server over REST with TLS.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from m3vdb.connectors.common import closed_on_error
from m3vdb.connectors.engine import (
    CollectionInfo,
    record_json,
    settle_spec,
    spec_from_record_json,
)
from m3vdb.connectors.plan import SearchPlan
from m3vdb.connectors.qdrant.layout import RECORD_KEY, QdrantLayoutEngine
from m3vdb.errors import (
    BackendError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
)
from m3vdb.schemas import qdrant as qschema
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.options import QdrantOptions
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

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


class QdrantEngine(QdrantLayoutEngine):
    """A Qdrant collection (server or local mode) holding BGE-M3's outputs in native named
    vectors; open it with :meth:`open` (``m3vdb.connect``). Writes are one
    ``upsert(wait=True)`` per batch, searches one ``query_points``."""

    database = "Qdrant"

    def __init__(
        self,
        client: QdrantClient,
        *,
        collection: str,
        spec: IndexSpec,
        owns_client: bool = False,
    ) -> None:
        super().__init__(client, collection=collection, spec=spec, owns_client=owns_client)
        # Capabilities, detected once.
        self._local = is_local(client)
        models = qschema.qdrant_models()
        self._m = models
        self._rrf_has_k = hasattr(models, "Rrf") and "k" in getattr(models.Rrf, "model_fields", {})
        self._formula = hasattr(models, "FormulaQuery")

    # -- database level -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: Any,
        *,
        collection: str,
        spec: IndexSpec | None,
        default_spec: IndexSpec,
        options: QdrantOptions | None = None,
        create: bool = True,
    ) -> QdrantEngine:
        """Opens a Qdrant collection, creating it if missing, else validating it (see
        ``Engine.open``). ``target``: a ``QdrantClient`` (left open by ``close``) or a URL (see
        the module docstring); ``options``: client settings for a server URL.

        Raises:
            MissingDependencyError: qdrant-client is not installed.
            InputError: the target is not usable.
            CollectionNotFoundError: ``create=False`` and the collection (or the local-mode
                folder) does not exist; nothing is created.
            SchemaMismatchError: the existing collection does not match the spec.
        """
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
            probe = cls(client, collection=collection, spec=default_spec, owns_client=owns_client)
            recorded = probe._recorded_spec()
            engine = cls(
                client,
                collection=collection,
                spec=settle_spec(spec, recorded, default_spec),
                owns_client=owns_client,
            )
            engine._ensure_collection(create=create)
        return engine

    @classmethod
    def drop_collection(
        cls, target: Any, collection: str, *, options: QdrantOptions | None = None
    ) -> bool:
        """Drops ``collection`` whatever its schema; False when there was none (and creates no
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

    @classmethod
    def list_collections(
        cls, target: Any, *, options: QdrantOptions | None = None
    ) -> list[CollectionInfo]:
        """Every collection with its exact point count and recorded spec (creates no
        local-mode folder that does not exist)."""
        if isinstance(target, str):
            folder = client_options(target).get("path")
            if folder is not None and not os.path.exists(folder):
                return []
        client = client_from_target(target, options)
        try:
            names = sorted(c.name for c in client.get_collections().collections)
            out = []
            for name in names:
                info = client.get_collection(name)
                entries = int(client.count(name, exact=True).count)
                out.append(CollectionInfo(name, entries, _spec_of(info)))
            return out
        except M3VDBError:
            raise
        except Exception as exc:
            raise translate_error(exc, "collection listing") from exc
        finally:
            if client is not target:
                client.close()

    # -- the error table ------------------------------------------------------------------

    def is_transient(self, exc: Exception) -> bool:
        return is_transient(exc)

    def is_missing_collection(self, exc: Exception) -> bool:
        # local mode: ValueError("Collection X not found"); server: 404 "... doesn't exist"
        text = str(exc)
        if isinstance(exc, ValueError) and text == f"Collection {self._collection} not found":
            return True
        status = getattr(exc, "status_code", None)
        return status == 404 and "doesn't exist" in text

    def where(self) -> str:
        return "Qdrant (local mode)" if self._local else "Qdrant"

    def translate_error(self, exc: Exception, what: str) -> M3VDBError:
        return translate_error(exc, what)

    # -- opening --------------------------------------------------------------------------

    def _recorded_spec(self) -> IndexSpec | None:
        if not self.call(
            "collection check", partial(self._client.collection_exists, self._collection)
        ):
            return None
        info = self.call("collection info", partial(self._client.get_collection, self._collection))
        return _spec_of(info)

    def _ensure_collection(self, *, create: bool = True) -> None:
        """Creates the collection (recording its spec), or checks that the existing one
        matches the spec; then creates missing payload indexes (server only)."""
        client, name = self._client, self._collection
        exists = self.call("collection check", partial(client.collection_exists, name))
        if not exists and not create:
            raise CollectionNotFoundError(name, self.where())
        if not exists:
            try:
                self.call(
                    "collection creation",
                    partial(
                        client.create_collection,
                        name,
                        vectors_config=qschema.vectors_config(self._spec),
                        sparse_vectors_config=qschema.sparse_vectors_config(self._spec) or None,
                        metadata={RECORD_KEY: record_json(self._spec)},
                    ),
                )
            except M3VDBError:
                # Another process may have created it in the meantime: validate that one.
                if not client.collection_exists(name):
                    raise
                self._validate()
        else:
            self._validate()
        if not self._local:  # local mode has no payload indexes (and warns on each)
            info = self.call("collection info", partial(client.get_collection, name))
            schema = info.payload_schema or {}
            for key, kind in qschema.payload_indexes(self._spec):
                if key not in schema:
                    make_index = partial(
                        client.create_payload_index,
                        name,
                        field_name=key,
                        field_schema=kind,
                        wait=True,
                    )
                    self.call("payload index creation", make_index)

    def _validate(self) -> None:
        info = self.call("collection info", partial(self._client.get_collection, self._collection))
        problems = qschema.validate_collection(
            info, self._spec, check_payload_indexes=not self._local
        )
        if problems:
            raise self.schema_mismatch(problems)

    # -- collection level ---------------------------------------------------------------

    def count(self) -> int:
        """Number of documents stored (exact count)."""
        result = self.call("count", partial(self._client.count, self._collection, exact=True))
        return int(result.count)

    def drop(self) -> None:
        """Deletes the collection."""
        self.call("collection drop", partial(self._client.delete_collection, self._collection))

    # -- the native calls of the shared layout ------------------------------------------

    def _native_filter(self, flt: Filter | None) -> Any:
        return qschema.compile_filter(flt, self._spec)

    def _point(self, doc: Document, emb: M3Embedding, fde: np.ndarray | None = None) -> Any:
        return qschema.to_point(doc, emb, self._spec, fde)

    def _upsert(self, points: list[Any]) -> None:
        self.call(
            "upsert", partial(self._client.upsert, self._collection, points=points, wait=True)
        )

    def _delete_points(self, point_ids: list[str]) -> None:
        selector = self._m.PointIdsList(points=point_ids)
        self._delete(selector)

    def _delete_matching(self, native_filter: Any) -> None:
        self._delete(self._m.FilterSelector(filter=native_filter))

    def _delete(self, selector: Any) -> None:
        self.call(
            "delete",
            partial(self._client.delete, self._collection, points_selector=selector, wait=True),
        )

    def _retrieve(self, point_ids: list[str]) -> list[Any]:
        return list(
            self.call(
                "retrieve",
                partial(
                    self._client.retrieve,
                    self._collection,
                    ids=point_ids,
                    with_payload=True,
                    with_vectors=False,
                ),
            )
        )

    def _scroll(
        self, native_filter: Any, limit: int, offset: Any, *, with_vectors: bool = False
    ) -> tuple[list[Any], Any]:
        records, next_offset = self.call(
            "scroll",
            partial(
                self._client.scroll,
                self._collection,
                scroll_filter=native_filter,
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            ),
        )
        return list(records), next_offset

    def _vector_query(self, vector: Any, using: str) -> Any:
        return _Nearest(vector, using)

    def _sparse_vector(self, weights: Mapping[int, float]) -> Any:
        return qschema.sparse_vector(weights)

    def _prefetch(self, query: Any, *, limit: int, native_filter: Any, stages: Any = None) -> Any:
        vector, using = _split(query)
        return self._m.Prefetch(
            prefetch=stages, query=vector, using=using, filter=native_filter, limit=limit
        )

    def _query(
        self,
        query: Any,
        *,
        limit: int,
        native_filter: Any,
        stages: Any = None,
        colbert: bool = False,
    ) -> list[Any]:
        vector, using = _split(query)
        params = qschema.colbert_search_params(self._spec) if colbert else None
        response = self.call(
            "search",
            partial(
                self._client.query_points,
                self._collection,
                prefetch=stages,
                query=vector,
                using=using,
                query_filter=native_filter,
                search_params=params,
                limit=limit,
                with_payload=True,
                with_vectors=False,
            ),
        )
        return list(response.points)

    def _fusion(self, plan: SearchPlan, weights: list[float]) -> Any:
        """``Rrf(k=rrf_k + 1)``, or ``FormulaQuery`` for ``fusion="weighted"`` (Qdrant's
        other score fusion, DBSF, takes no weights). Clients without ``Rrf(k=...)`` fall back
        to ``Fusion.RRF`` and Qdrant's fixed k = 2 (rrf_k = 1), with a warning."""
        m = self._m
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
            stacklevel=4,
        )
        return m.FusionQuery(fusion=m.Fusion.RRF)


class _Nearest:
    """A vector and the named vector it searches (``query=`` and ``using=`` of a call)."""

    __slots__ = ("using", "vector")

    def __init__(self, vector: Any, using: str) -> None:
        self.vector = vector
        self.using = using


def _split(query: Any) -> tuple[Any, str | None]:
    if isinstance(query, _Nearest):
        return query.vector, query.using
    return query, None


def _spec_of(info: Any) -> IndexSpec | None:
    """The spec a collection recorded in its metadata (None: none, or unreadable)."""
    metadata = getattr(info.config, "metadata", None) or {}
    return spec_from_record_json(metadata.get(RECORD_KEY)) if isinstance(metadata, dict) else None
