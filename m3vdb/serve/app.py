"""The HTTP application of ``m3vdb serve``: routes, limits, authentication, errors.

Routes (one model; the ``model`` field of a request may be any string):

- ``POST /v1/embeddings`` (OpenAI), ``GET /v1/models``: dense vectors, ``float`` or ``base64``.
- ``POST /embed`` and ``POST /`` (text-embeddings-inference: what ``huggingface_hub``'s
  ``InferenceClient.feature_extraction`` posts to), ``POST /embed_sparse``, ``POST /embed_all``
  (ColBERT rows), ``GET /info``, ``GET /health``.
- ``POST /encode``: any subset of dense, sparse and ColBERT from one forward pass, ColBERT as
  base64 float32 or float16 with its shape.
- ``GET /metrics``: Prometheus.

Every encoding route goes through one path (:meth:`_Service.encode`): count and token
limits (413), the dynamic batcher (429 when full), the wait for the result that gives up,
and drops the work, when the client disconnects.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio.to_thread

from m3vdb.schemas.codec import colbert_native, sparse_native
from m3vdb.schemas.data import M3Embedding
from m3vdb.serve import wire
from m3vdb.serve._deps import (
    FastAPI,
    Request,
    RequestValidationError,
    Response,
    StarletteHTTPException,
    uvicorn,
)
from m3vdb.serve.batcher import (
    BatcherClosedError,
    DynamicBatcher,
    Outputs,
    QueueFullError,
    TokenEncoder,
)
from m3vdb.serve.config import ServeConfig
from m3vdb.serve.metrics import ServeMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ROUTES = (
    "/",
    "/embed",
    "/embed_sparse",
    "/embed_all",
    "/tokenize",
    "/encode",
    "/info",
    "/health",
    "/metrics",
    "/v1/embeddings",
    "/v1/models",
)
# above this many characters in a request, tokenising runs off the event loop
_TOKENIZE_INLINE_CHARS = 20_000
# above this many tokens in a response, building its JSON runs off the event loop
_RESPOND_INLINE_TOKENS = 4_096


class ServedEncoder(TokenEncoder, Protocol):
    """What the server needs of an encoder (``M3Encoder`` has it)."""

    dense_dim: int
    colbert_dim: int
    max_length: int
    tokenizer: Any  # a transformers fast tokenizer, for /tokenize's offsets

    def tokenize(
        self, texts: Sequence[str], *, max_length: int | None = None, truncate: bool = True
    ) -> list[list[int]]: ...


class _ClientGone(Exception):
    """The client disconnected before its answer was ready."""


class _Service:
    """The state the routes share: settings, encoder, metrics and the batcher."""

    def __init__(self, encoder: ServedEncoder, config: ServeConfig, metrics: ServeMetrics):
        self.encoder = encoder
        self.config = config
        self.metrics = metrics
        self.max_input_tokens = min(
            config.max_input_tokens or encoder.max_length, encoder.max_length
        )
        self.batcher: DynamicBatcher | None = None

    async def encode(
        self,
        request: Request,
        texts: list[str],
        outputs: Outputs,
        *,
        truncate: bool,
        field: str,
        route: str,
    ) -> tuple[list[M3Embedding], int]:
        """The embeddings of ``texts`` and their token count, through the batcher."""
        self.check_count(texts, field)
        ids = await self._tokenize(texts, truncate)
        if not truncate:
            for index, row in enumerate(ids):
                if len(row) > self.max_input_tokens:
                    raise wire.ApiError(
                        413,
                        f"{field}[{index}] has {len(row)} tokens; the limit is "
                        f"{self.max_input_tokens} per text (--max-input-tokens, special tokens "
                        "included): shorten or split it, or send truncate=true (on /embed, "
                        "/embed_sparse, /embed_all and /encode) to cut it at the limit",
                        "validation",
                    )
        return await self.encode_ids(request, ids, outputs, count=len(texts), route=route)

    async def encode_ids(
        self,
        request: Request,
        ids: list[list[int]],
        outputs: Outputs,
        *,
        count: int,
        route: str,
    ) -> tuple[list[M3Embedding], int]:
        """The embeddings of token id rows (``count`` client texts) through the batcher."""
        batcher = self.batcher
        if batcher is None:
            raise wire.ApiError(503, "the server is starting: retry shortly", "unavailable")
        try:
            job = batcher.submit(ids, outputs)
        except QueueFullError as exc:
            self.metrics.rejected.labels("queue_full").inc()
            raise wire.ApiError(
                429, str(exc), "overloaded", {"Retry-After": str(exc.retry_after_s)}
            ) from exc
        except BatcherClosedError as exc:
            raise wire.ApiError(503, str(exc), "unavailable") from exc
        embs = await _result_or_disconnect(request, job.future)
        tokens = sum(len(x) for x in ids)
        self.metrics.inputs.labels(route).inc(count)
        self.metrics.input_tokens.inc(tokens)
        return embs, tokens

    def check_count(self, texts: list[str], field: str) -> None:
        limit = self.config.max_inputs_per_request
        if len(texts) > limit:
            raise wire.ApiError(
                413,
                f"{field} holds {len(texts)} texts; the limit is {limit} per request "
                "(--max-inputs-per-request): split it into several requests",
                "validation",
            )

    async def _tokenize(self, texts: list[str], truncate: bool) -> list[list[int]]:
        def run() -> list[list[int]]:
            return self.encoder.tokenize(texts, max_length=self.max_input_tokens, truncate=truncate)

        if sum(map(len, texts)) <= _TOKENIZE_INLINE_CHARS:
            return run()  # a few short texts: cheaper than a thread hop
        return await anyio.to_thread.run_sync(run)


async def _result_or_disconnect(request: Request, future: Any) -> list[M3Embedding]:
    """Waits for the batcher's answer; if the client disconnects first, cancels the job (the
    batcher drops its texts not yet encoded) and raises ``_ClientGone``."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        future.cancel()
        raise
    finally:
        gone.cancel()
    if not result.done():
        future.cancel()
        raise _ClientGone()
    try:
        embs: list[M3Embedding] = result.result()
    except Exception as exc:
        raise wire.ApiError(
            500, f"the encoder failed: {type(exc).__name__}: {exc}", "backend"
        ) from exc
    return embs


async def _disconnected(request: Request) -> None:
    # The body is already read, so the next message is the disconnect (uvicorn blocks until
    # then).
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.dumps(obj), status, headers, media_type="application/json")


async def _respond(build: Callable[[], Any], tokens: int) -> Response:
    """The JSON response ``build`` makes; built off the event loop when it is large."""
    if tokens <= _RESPOND_INLINE_TOKENS:
        return _json(build())
    body = await anyio.to_thread.run_sync(lambda: wire.dumps(build()))
    return Response(body, media_type="application/json")


def _check_tei(body: wire.TEIRequest, dense_dim: int) -> None:
    if not body.normalize:
        raise wire.ApiError(
            422,
            "normalize=false is not available: BGE-M3's dense vector is defined as the "
            "normalised CLS state; send normalize=true or leave it out",
            "validation",
        )
    if body.truncation_direction.lower() != "right":
        raise wire.ApiError(
            422,
            f"truncation_direction={body.truncation_direction!r} is not available: texts are "
            "truncated on the right, as BGE-M3's reference does; send 'right' or leave it out",
            "validation",
        )
    if body.prompt_name is not None:
        raise wire.ApiError(
            422,
            f"prompt_name={body.prompt_name!r}: this server has no prompts (BGE-M3 uses none); "
            "leave it out",
            "validation",
        )
    _check_dimensions(body.dimensions, dense_dim)


def _check_dimensions(dimensions: int | None, dense_dim: int) -> None:
    if dimensions is not None and dimensions != dense_dim:
        raise wire.ApiError(
            400,
            f"dimensions={dimensions} is not available: this model's dense vector has "
            f"{dense_dim} dimensions and cannot be shortened; leave dimensions out or send "
            f"{dense_dim}",
            "validation",
        )


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """(status, message) for a body that failed to parse or validate."""
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            return 400, (
                f"the body is not valid JSON ({detail}); send a JSON object such as "
                '{"inputs": ["a text"]}'
            )
        if tuple(error.get("loc", ())) == ("body",):  # no body, or JSON that is no object
            found = error.get("input")
            if isinstance(found, bytes):  # a body FastAPI did not read as JSON
                return 422, (
                    "the body was not sent as JSON: send it with 'Content-Type: application/json'"
                )
            got = "nothing" if found is None else f"{type(found).__name__} {found!r:.40}"
            return 422, (
                "invalid request body: the body must be a JSON object such as "
                f'{{"inputs": ["a text"]}}; got {got}'
            )
        loc = ".".join(str(x) for x in error.get("loc", ()) if x != "body") or "body"
        found = error.get("input")
        shown = "" if isinstance(found, dict) else f" (got {found!r:.60})"
        problems.append(f"{loc}: {error.get('msg', 'invalid')}{shown}")
    return 422, "invalid request body: " + "; ".join(problems)


class ServeApp:
    """The ASGI application :func:`create_app` returns: the FastAPI routes behind a gate
    (pure ASGI middleware) that records request metrics, checks the API key (401) and the
    body size (413), and replays the body it read to the routes.

    Attributes:
        app: the FastAPI application.
        service: the shared state (settings, encoder, metrics, the batcher once started).
    """

    def __init__(self, app: Any, service: _Service) -> None:
        self.app = app
        self.service = service
        key = service.config.api_key
        self.key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in ROUTES else "other"
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if self.key is not None and path != "/health":
                self._authorize(scope)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                receive = await self._read_body(scope, receive)
            await self.app(scope, receive, send_status)
        except wire.ApiError as exc:
            await _json(wire.error_body(path, exc.message, exc.kind), exc.status, exc.headers)(
                scope, receive, send_status
            )
        except _ClientGone:
            status[0] = 499  # nginx's "client closed request": nothing is sent
        finally:
            metrics = self.service.metrics
            metrics.requests.labels(route, str(status[0])).inc()
            metrics.request_seconds.labels(route).observe(time.perf_counter() - start)

    def _authorize(self, scope: Scope) -> None:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if not header:
            message = (
                "this server needs an API key: send the header 'Authorization: Bearer KEY' with "
                "the key given to m3vdb serve --api-key"
            )
        elif scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key or b""):
            message = (
                "the API key sent is not this server's: send 'Authorization: Bearer KEY' with "
                "the key given to m3vdb serve --api-key"
            )
        else:
            return
        raise wire.ApiError(401, message, "authentication", {"WWW-Authenticate": "Bearer"})

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.service.config.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = wire.ApiError(
            413,
            f"the request body exceeds the limit of {limit} bytes (--max-body-bytes): send fewer "
            "or shorter texts per request",
            "validation",
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def create_app(encoder: ServedEncoder, config: ServeConfig | None = None) -> ServeApp:
    """The ASGI application serving ``encoder`` (an ``M3Encoder``).

    The batcher's worker thread starts with the application (ASGI lifespan) and, at shutdown,
    finishes what is queued: uvicorn first stops accepting connections and waits for the
    requests in flight, then the lifespan ends.

    Args:
        encoder: the model.
        config: limits and settings (default: ``ServeConfig()``).

    Returns:
        A FastAPI application wrapped in ServeApp (metrics, API key, body limit);
        run it with any ASGI server, e.g. ``uvicorn.run(app)``.
    """
    config = config or ServeConfig()
    metrics = ServeMetrics()
    service = _Service(encoder, config, metrics)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        batcher = DynamicBatcher(
            encoder,
            max_pending_inputs=config.max_pending_inputs,
            max_wait_s=config.max_wait_s,
            metrics=metrics,
        )
        # one pass before the first request: the first forward pass is slow (allocation)
        await anyio.to_thread.run_sync(
            lambda: encoder.encode_token_ids(encoder.tokenize(["warm-up"]), sparse=True)
        )
        batcher.start()
        service.batcher = batcher
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(batcher.close)

    app = FastAPI(
        title="m3vdb serve",
        description="BGE-M3 dense, sparse and ColBERT outputs over HTTP",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service

    @app.exception_handler(wire.ApiError)
    async def api_error(request: Request, exc: wire.ApiError) -> Response:
        status = exc.status
        if status == 422 and wire.is_openai_path(request.url.path):
            status = 400  # OpenAI answers invalid requests with 400
        body = wire.error_body(request.url.path, exc.message, exc.kind)
        return _json(body, status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # 404 / 405 and Starlette's own body errors: the family's shape, not {"detail": ...}
        kind = "validation" if exc.status_code < 500 else "backend"
        body = wire.error_body(request.url.path, str(exc.detail), kind)
        return _json(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(_ClientGone)
    async def client_gone(request: Request, exc: _ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; never delivered

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        status, message = _validation_message(exc)
        return await api_error(request, wire.ApiError(status, message, "validation"))

    _add_openai_routes(app, service)
    _add_tei_routes(app, service)
    _add_native_routes(app, service)
    return ServeApp(app, service)


def _add_openai_routes(app: Any, service: _Service) -> None:
    encoder, config = service.encoder, service.config

    @app.post("/v1/embeddings")
    async def openai_embeddings(body: wire.OpenAIEmbeddingRequest, request: Request) -> Response:
        """OpenAI's embeddings API: BGE-M3's dense vectors."""
        texts = wire.texts_from(body.input, "input")
        _check_dimensions(body.dimensions, encoder.dense_dim)
        embs, tokens = await service.encode(
            request, texts, Outputs(dense=True), truncate=False, field="input", route="openai"
        )
        fmt = body.encoding_format

        def build() -> dict[str, Any]:
            data = [
                {"object": "embedding", "index": i, "embedding": wire.dense_value(e.dense, fmt)}
                for i, e in enumerate(embs)
                if e.dense is not None
            ]
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            return {
                "object": "list",
                "data": data,
                "model": body.model or config.model_name,
                "usage": usage,
            }

        return await _respond(build, tokens)

    @app.get("/v1/models")
    async def openai_models() -> Response:
        """The one model served."""
        model = {"id": config.model_name, "object": "model", "created": 0, "owned_by": "m3vdb"}
        return _json({"object": "list", "data": [model]})


def _add_tei_routes(app: Any, service: _Service) -> None:
    encoder, config = service.encoder, service.config

    async def embed(body: wire.TEIRequest, request: Request) -> Response:
        """text-embeddings-inference's ``/embed``: dense vectors, ``[[float]]``."""
        texts = wire.texts_from(body.inputs, "inputs")
        _check_tei(body, encoder.dense_dim)
        embs, tokens = await service.encode(
            request,
            texts,
            Outputs(dense=True),
            truncate=bool(body.truncate),
            field="inputs",
            route="embed",
        )
        return await _respond(
            lambda: [e.dense.tolist() for e in embs if e.dense is not None], tokens
        )

    app.post("/embed")(embed)
    app.post("/")(embed)  # TEI's compatibility route: InferenceClient("http://host:port")

    @app.post("/embed_sparse")
    async def embed_sparse(body: wire.TEIRequest, request: Request) -> Response:
        """TEI's sparse shape: ``[[{"index": token_id, "value": weight}]]``."""
        texts = wire.texts_from(body.inputs, "inputs")
        _check_tei(body, encoder.dense_dim)
        embs, tokens = await service.encode(
            request,
            texts,
            Outputs(dense=False, sparse=True),
            truncate=bool(body.truncate),
            field="inputs",
            route="embed_sparse",
        )
        return await _respond(
            lambda: [wire.sparse_tei(e.sparse) for e in embs if e.sparse is not None], tokens
        )

    @app.post("/embed_all")
    async def embed_all(body: wire.TEIRequest, request: Request) -> Response:
        """TEI's ``/embed_all`` shape, ``[[[float]]]``: per text its ColBERT rows (one per
        token but the CLS, L2-normalised). ``/encode`` sends the same rows as base64."""
        texts = wire.texts_from(body.inputs, "inputs")
        _check_tei(body, encoder.dense_dim)
        embs, tokens = await service.encode(
            request,
            texts,
            Outputs(dense=False, colbert=True),
            truncate=bool(body.truncate),
            field="inputs",
            route="embed_all",
        )
        return await _respond(
            lambda: [e.colbert.tolist() for e in embs if e.colbert is not None], tokens
        )

    @app.post("/tokenize")
    async def tokenize(body: wire.TokenizeRequest, request: Request) -> Response:
        """TEI's ``/tokenize``: per text its tokens ``{"id", "text", "special", "start",
        "stop"}`` (character offsets; null for special tokens)."""
        texts = wire.texts_from(body.inputs, "inputs")
        if body.prompt_name is not None:
            raise wire.ApiError(422, "prompt_name: this server has no prompts", "validation")
        service.check_count(texts, "inputs")

        def run() -> list[list[dict[str, Any]]]:
            tok = encoder.tokenizer
            enc = tok(
                texts,
                add_special_tokens=body.add_special_tokens,
                truncation=body.truncate,
                max_length=service.max_input_tokens if body.truncate else None,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                return_attention_mask=False,
                verbose=False,  # a text longer than the model is the caller's to split
            )
            out = []
            for text, ids, offsets, special in zip(
                texts, enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
            ):
                pieces = tok.convert_ids_to_tokens(ids)
                out.append(
                    [
                        {"id": i, "text": p, "special": True, "start": None, "stop": None}
                        if s
                        else {"id": i, "text": text[a:b], "special": False, "start": a, "stop": b}
                        for i, p, (a, b), s in zip(ids, pieces, offsets, special)
                    ]
                )
            return out

        return _json(await anyio.to_thread.run_sync(run))

    @app.get("/info")
    async def info() -> Response:
        """TEI's ``/info`` fields, plus the dimensions and outputs of the model."""
        return _json(
            {
                "model_id": config.model_name,
                "model_sha": None,
                "model_dtype": str(getattr(encoder, "dtype", "unknown")).removeprefix("torch."),
                "model_type": {"embedding": {"pooling": "cls"}},
                "max_concurrent_requests": config.max_pending_inputs,
                "max_input_length": service.max_input_tokens,
                "max_batch_tokens": encoder.token_budget,
                "max_batch_requests": encoder.max_batch_size,
                "max_client_batch_size": config.max_inputs_per_request,
                "tokenization_workers": 1,
                "version": _version(),
                "dense_dim": encoder.dense_dim,
                "colbert_dim": encoder.colbert_dim,
                "outputs": ["dense", "sparse", "colbert"],
            }
        )

    @app.get("/health")
    async def health() -> Response:
        """200 while the server takes requests, 503 while starting or stopping."""
        batcher = service.batcher
        if batcher is None or not batcher.accepting:
            return _json({"status": "unavailable"}, 503)
        return _json({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)


def _add_native_routes(app: Any, service: _Service) -> None:
    config = service.config

    @app.post("/encode")
    async def encode(body: wire.EncodeRequest, request: Request) -> Response:
        """Any subset of dense, sparse and ColBERT from ONE forward pass per batch.

        Per text: ``dense`` (a float list, or base64 float32 with ``encoding_format=base64``),
        ``sparse`` (``{"indices": [...], "values": [...]}``) and ``colbert``
        (``{"shape": [rows, dim], "dtype": "float32" | "float16", "data": base64}``).
        """
        texts = wire.texts_from(body.inputs, "inputs")
        outputs = Outputs(body.dense, body.sparse, body.colbert)
        if not (outputs.dense or outputs.sparse or outputs.colbert):
            raise wire.ApiError(
                422, "nothing to compute: set at least one of dense, sparse, colbert", "validation"
            )
        spans: list[Any] | None = None
        if body.window_tokens is not None:
            embs, tokens, spans = await _encode_windows(service, request, texts, outputs, body)
        else:
            embs, tokens = await service.encode(
                request, texts, outputs, truncate=body.truncate, field="inputs", route="encode"
            )

        def build() -> dict[str, Any]:
            data = []
            for i, e in enumerate(embs):
                item: dict[str, Any] = {"index": i}
                if spans is not None:  # which text, which tokens and characters
                    span = spans[i]
                    item["window"] = {
                        "text_index": span.text_index,
                        "token_start": span.token_start,
                        "token_end": span.token_end,
                        "char_start": span.char_start,
                        "char_end": span.char_end,
                    }
                if e.dense is not None:
                    item["dense"] = wire.dense_value(e.dense, body.encoding_format)
                if e.sparse is not None:
                    item["sparse"] = sparse_native(e.sparse)
                if e.colbert is not None:
                    item["colbert"] = colbert_native(e.colbert, body.colbert_dtype)
                data.append(item)
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            return {"model": config.model_name, "data": data, "usage": usage}

        return await _respond(build, tokens)


async def _encode_windows(
    service: _Service,
    request: Request,
    texts: list[str],
    outputs: Outputs,
    body: wire.EncodeRequest,
) -> tuple[list[M3Embedding], int, list[Any]]:
    """``/encode`` with ``window_tokens``: every text split into token windows by the
    encoder's own tokenizer and window plan (``encoder/windows.py``, what
    ``M3Encoder.encode_windows`` does), each window one batcher input; a client without the
    tokenizer (``RemoteEncoder``, ``m3vdb index --encoder-url``) gets the same windows as a
    local model."""
    service.check_count(texts, "inputs")
    window, overlap = body.window_tokens, body.overlap_tokens
    assert window is not None
    limit = service.max_input_tokens
    if not 3 <= window <= limit or not 0 <= overlap < window - 2:
        raise wire.ApiError(
            422,
            f"window_tokens={window}, overlap_tokens={overlap}: window_tokens must be in [3, "
            f"{limit}] (--max-input-tokens) and overlap_tokens in [0, window_tokens - 2)",
            "validation",
        )
    plan_windows = getattr(service.encoder, "plan_windows", None)
    if plan_windows is None:
        raise wire.ApiError(
            422, "this server's encoder cannot split texts into windows", "validation"
        )

    def plan() -> Any:
        return plan_windows(texts, window, overlap)

    if sum(map(len, texts)) <= _TOKENIZE_INLINE_CHARS:
        windows = plan()
    else:
        windows = await anyio.to_thread.run_sync(plan)
    embs, tokens = await service.encode_ids(
        request, windows.ids, outputs, count=len(texts), route="encode"
    )
    return embs, tokens, windows.spans


def _version() -> str:
    from m3vdb import __version__

    return __version__


def run_server(
    encoder: ServedEncoder,
    config: ServeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
) -> None:
    """Serves ``encoder`` with uvicorn until SIGINT / SIGTERM, then finishes the requests in
    flight before exiting (a second signal forces the exit)."""
    uvicorn.run(create_app(encoder, config), host=host, port=port, log_level=log_level)
