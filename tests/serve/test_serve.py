"""``m3vdb serve`` on a loopback port, talked to by REAL clients nobody here wrote: the
``openai`` client, ``huggingface_hub.InferenceClient`` (TEI's ``feature_extraction``) and plain
HTTP; every vector is compared with ``M3Encoder.encode`` on the tiny checkpoint.

Tolerance: the server batches texts of many requests together, and a batch's size changes how
its matrix multiplies are blocked; on the tiny checkpoint that moves fp32 outputs by ~1e-7.
The tests allow 1e-5 (the issue's bound).

Servers run in a thread of the test process (uvicorn on port 0). Tests that need the
batcher to hold still use ``GatedEncoder``: the tiny encoder behind an event the test opens,
so queue states are reached by construction, never by timing. If one of these tests hangs,
a gate was left closed: ``gated.gate.set()`` in a ``finally``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from m3vdb import Encoder, M3Embedding, RemoteEncoder
from m3vdb.encoder import M3Encoder
from m3vdb.encoder.batching import plan_batches
from m3vdb.serve import ServeConfig, create_app

openai = pytest.importorskip("openai", reason="the openai client is in the test extra")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is in the serve extra")
from huggingface_hub import InferenceClient  # noqa: E402 (after the skips)
from live_server import running  # noqa: E402

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOL = 1e-5
TEXTS = [
    "BGE-M3 gives three representations from one forward pass.",
    "Milvus stores sparse vectors.",
    "这是一个测试",
    "Qdrant keeps named vectors and multivectors, and its local mode runs in memory.",
    "",
    "short",
]
CONFIG = ServeConfig(
    model_name="tiny-bge-m3",
    api_key=KEY,
    max_inputs_per_request=8,
    max_input_tokens=64,
    max_pending_inputs=64,
    max_body_bytes=64 * 1024,
)


# --------------------------------------------------------------------------- helpers


class GatedEncoder:
    """The tiny encoder with a gate in front of each forward pass, and a log of the batches
    it ran (token ids per text)."""

    def __init__(self, inner: M3Encoder) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls: list[list[list[int]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # dims, lengths, budget, tokenize...

    def encode_token_ids(self, ids: Sequence[Sequence[int]], **outputs: bool) -> list[M3Embedding]:
        self.calls.append([list(x) for x in ids])
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.encode_token_ids(ids, **outputs)

    def hold(self) -> None:
        """The next forward pass blocks until :meth:`release`."""
        self.entered.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


def wait_until(condition: Any, what: str, seconds: float = 30) -> None:
    """Polls ``condition`` (not a timed assertion: the deadline only stops a hang)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def metric(url: str, name: str) -> float:
    """The sum of every sample of ``name`` on ``/metrics``."""
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and (line[len(name)] in " {")
    )


def assert_same(got: M3Embedding, want: M3Embedding) -> None:
    for field in ("dense", "colbert"):
        a, b = getattr(got, field), getattr(want, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.shape == b.shape and np.abs(a - b).max() <= TOL, field
    if want.sparse is None:
        assert got.sparse is None
    else:
        assert got.sparse is not None and got.sparse.keys() == want.sparse.keys()
        assert all(abs(got.sparse[k] - v) <= TOL for k, v in want.sparse.items())


@pytest.fixture(scope="module")
def url(tiny_encoder: M3Encoder) -> Iterator[str]:
    """The shared server: tiny encoder, API key, small limits."""
    with running(create_app(tiny_encoder, CONFIG)) as (base, _):
        yield base


@pytest.fixture()
def gated(tiny_encoder: M3Encoder) -> Iterator[tuple[str, GatedEncoder, Any]]:
    """A server of its own whose forward passes the test can hold: (url, encoder, app)."""
    encoder = GatedEncoder(tiny_encoder)
    config = ServeConfig(max_inputs_per_request=4, max_pending_inputs=4, max_wait_s=0)
    app = create_app(encoder, config)  # type: ignore[arg-type]
    try:
        with running(app) as (base, _):
            yield base, encoder, app
    finally:
        encoder.release()


# --------------------------------------------------------------------------- real clients


def test_openai_client_gets_the_encoders_dense_vectors(url: str, tiny_encoder: M3Encoder) -> None:
    """The ``openai`` client, default (base64) and float encodings, string and list input."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    want = tiny_encoder.encode(TEXTS, sparse=False, colbert=False)
    # default: the client asks for base64 and decodes it; explicit base64: the raw string
    for fmt in (openai.NOT_GIVEN, "float", "base64"):
        got = client.embeddings.create(model="any-name", input=TEXTS, encoding_format=fmt)
        assert [d.index for d in got.data] == list(range(len(TEXTS)))
        for d, w in zip(got.data, want):
            vector = d.embedding
            if isinstance(vector, str):
                vector = np.frombuffer(base64.b64decode(vector), dtype="<f4")
            assert np.abs(np.asarray(vector, dtype=np.float32) - w.dense).max() <= TOL
        assert got.model == "any-name"
        assert got.usage.prompt_tokens == sum(len(x) for x in tiny_encoder.tokenize(TEXTS))
    one = client.embeddings.create(model="m", input=TEXTS[1])
    assert np.abs(np.asarray(one.data[0].embedding) - want[1].dense).max() <= TOL
    assert [m.id for m in client.models.list()] == ["tiny-bge-m3"]


def test_openai_dimensions_other_than_the_models_are_a_400(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="dimensions=8 is not available.*32"):
        client.embeddings.create(model="m", input="a text", dimensions=8)
    assert client.embeddings.create(model="m", input="a text", dimensions=32).data


def test_huggingface_inference_client_feature_extraction(url: str, tiny_encoder: M3Encoder) -> None:
    """``InferenceClient(URL).feature_extraction``, as against a TEI server: the base URL
    (TEI's ``POST /``) and ``/embed``."""
    want = tiny_encoder.encode(TEXTS[:3], sparse=False, colbert=False)
    for endpoint in (url, f"{url}/embed"):
        client = InferenceClient(endpoint, token=KEY)
        for text, w in zip(TEXTS[:3], want):
            got = client.feature_extraction(text)
            assert got.shape == (1, 32) and np.abs(got[0] - w.dense).max() <= TOL
    batch = InferenceClient(url, token=KEY).feature_extraction(TEXTS[:3])  # type: ignore[arg-type]
    assert np.abs(batch - np.stack([w.dense for w in want])).max() <= TOL


def test_tei_sparse_and_colbert_routes_equal_the_encoder(url: str, tiny_encoder: M3Encoder) -> None:
    want = tiny_encoder.encode(TEXTS)
    sparse = httpx.post(f"{url}/embed_sparse", json={"inputs": TEXTS}, headers=AUTH).json()
    colbert = httpx.post(f"{url}/embed_all", json={"inputs": TEXTS}, headers=AUTH).json()
    for s, c, w in zip(sparse, colbert, want):
        assert [x["index"] for x in s] == sorted(w.sparse)
        got = M3Embedding(sparse={x["index"]: x["value"] for x in s}, colbert=np.array(c, "f4"))
        assert_same(got, M3Embedding(sparse=w.sparse, colbert=w.colbert))


@pytest.mark.parametrize("colbert_dtype", ["float32", "float16"])
def test_native_route_returns_any_subset_from_one_pass(
    url: str, tiny_encoder: M3Encoder, colbert_dtype: str
) -> None:
    from m3vdb.schemas.codec import decode_colbert, decode_float32

    want = tiny_encoder.encode(TEXTS)
    body = {"inputs": TEXTS, "sparse": True, "colbert": True, "colbert_dtype": colbert_dtype}
    answer = httpx.post(f"{url}/encode", json={**body, "encoding_format": "base64"}, headers=AUTH)
    data = answer.json()["data"]
    for item, w in zip(data, want):
        assert item["colbert"]["shape"] == list(w.colbert.shape)
        assert item["colbert"]["dtype"] == colbert_dtype
        rows = decode_colbert(item["colbert"])
        tol = TOL if colbert_dtype == "float32" else 1e-3  # float16 keeps ~3 decimal digits
        assert np.abs(rows - w.colbert).max() <= tol
        assert np.abs(decode_float32(item["dense"]) - w.dense).max() <= TOL
        assert item["sparse"]["indices"] == sorted(w.sparse)
    assert answer.json()["usage"]["prompt_tokens"] == sum(map(len, tiny_encoder.tokenize(TEXTS)))
    only_sparse = httpx.post(
        f"{url}/encode", json={"inputs": "a text", "dense": False, "sparse": True}, headers=AUTH
    ).json()["data"][0]
    assert set(only_sparse) == {"index", "sparse"}


def test_info_health_and_metrics(url: str) -> None:
    info = httpx.get(f"{url}/info", headers=AUTH).json()
    assert info["model_id"] == "tiny-bge-m3"
    assert (info["dense_dim"], info["colbert_dim"], info["max_input_length"]) == (32, 32, 64)
    assert info["max_client_batch_size"] == 8
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}  # no key needed
    httpx.post(f"{url}/embed", json={"inputs": ["a", "b"]}, headers=AUTH).raise_for_status()
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    for name in (
        "m3vdb_requests_total",
        "m3vdb_request_duration_seconds_bucket",
        "m3vdb_input_tokens_total",
        "m3vdb_batch_size_bucket",
        "m3vdb_batch_tokens_bucket",
        "m3vdb_queue_depth",
        "m3vdb_pending_inputs",
    ):
        assert name in text, name
    assert metric(url, "m3vdb_inputs_total") >= 2


# --------------------------------------------------------------------------- remote encoder


def test_remote_encoder_satisfies_the_encoder_contract(url: str, tiny_encoder: M3Encoder) -> None:
    with RemoteEncoder(url, api_key=KEY) as remote:
        assert isinstance(remote, Encoder)
        assert (remote.dense_dim, remote.colbert_dim) == (32, 32)
        assert remote.tokenize(TEXTS) == tiny_encoder.tokenize(TEXTS, max_length=64)
        got = remote.encode(TEXTS * 2)  # more texts than one request takes: split in two
        for g, w in zip(got, tiny_encoder.encode(TEXTS * 2, max_length=64)):
            assert_same(g, w)
        dense_only = remote.encode(["a"], sparse=False, colbert=False)[0]
        assert dense_only.sparse is None and dense_only.colbert is None
        assert remote.encode([]) == []
        with pytest.raises(TypeError, match=r"texts\[1\]"):
            remote.encode(["a", 3])  # type: ignore[list-item]
    with pytest.raises(Exception, match="refused the API key"):
        RemoteEncoder(url, api_key="wrong")


def test_remote_encoder_indexes_and_searches_like_the_local_encoder(
    url: str, tiny_encoder: M3Encoder
) -> None:
    """``connect(..., encoder=RemoteEncoder(url))`` on Qdrant's local mode: same hits and
    scores as with the local encoder."""
    pytest.importorskip("qdrant_client")
    from m3vdb import Document, connect

    docs = [Document(id=f"d{i}", text=t, metadata={"n": i}) for i, t in enumerate(TEXTS) if t]
    with RemoteEncoder(url, api_key=KEY) as remote:
        results = []
        for encoder in (tiny_encoder, remote):
            with connect("qdrant+memory://", collection="docs", encoder=encoder) as store:
                store.upsert(docs)
                results.append(
                    [
                        [(h.id, h.score) for h in store.search(q, k=3, mode=mode)]
                        for q in ("sparse vectors", "三 representations")
                        for mode in ("dense", "sparse", "hybrid")
                    ]
                )
    local, served = results
    for a, b in zip(local, served):
        assert [i for i, _ in a] == [i for i, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=TOL)


def test_a_langchain_store_shares_the_server(url: str, tiny_encoder: M3Encoder) -> None:
    """``M3VectorStore`` over a connector whose encoder is a ``RemoteEncoder``: same
    documents and scores as with the local encoder."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("qdrant_client")
    from m3vdb import connect
    from m3vdb.langchain import M3VectorStore

    texts = [t for t in TEXTS if t]
    ids = [f"d{i}" for i in range(len(texts))]
    found = []
    with RemoteEncoder(url, api_key=KEY) as remote:
        for encoder in (tiny_encoder, remote):
            connector = connect("qdrant+memory://", collection="lc", encoder=encoder)
            store = M3VectorStore(connector, owns_connector=True)
            store.add_texts(texts, ids=ids)
            found.append(store.similarity_search_with_score("sparse vectors", k=3))
            store.close()
    local, served = found
    assert [d.id for d, _ in local] == [d.id for d, _ in served]
    assert np.allclose([s for _, s in local], [s for _, s in served], atol=TOL)


# --------------------------------------------------------------------------- batching


def test_concurrent_requests_share_batches_and_equal_encoding_alone(
    gated: tuple[str, GatedEncoder, Any], tiny_encoder: M3Encoder
) -> None:
    """Requests queued while the model is busy are planned together, into exactly the
    batches one ``encode`` call over all their texts would run, and each text's outputs equal
    ``encode([text])`` alone."""
    base, encoder, app = gated
    batcher = app.service.batcher
    texts = [
        "a first query",
        "the second query here",
        "Milvus stores sparse vectors.",
        "Qdrant keeps named vectors.",
    ]
    outputs = [
        {"dense": True},
        {"dense": False, "sparse": True},
        {"dense": False, "colbert": True},
        {"dense": True, "sparse": True, "colbert": True},
    ]
    encoder.hold()
    with concurrent.futures.ThreadPoolExecutor(len(texts) + 1) as pool:
        blocker = pool.submit(httpx.post, f"{base}/encode", json={"inputs": "hold"})
        wait_until(encoder.entered.is_set, "the blocking request's forward pass")
        futures = [
            pool.submit(httpx.post, f"{base}/encode", json={"inputs": [t], **o}, timeout=60)
            for t, o in zip(texts[:3], outputs)
        ]
        wait_until(lambda: batcher.pending_inputs == 4, "three queued requests")
        encoder.calls.clear()
        encoder.release()
        answers = [f.result().json()["data"][0] for f in futures]
        assert blocker.result().status_code == 200
    lengths = [len(x) for x in tiny_encoder.tokenize(texts[:3])]
    planned = plan_batches(
        lengths, token_budget=tiny_encoder.token_budget, max_batch_size=tiny_encoder.max_batch_size
    )
    assert sorted(sorted(map(len, call)) for call in encoder.calls) == sorted(
        sorted(lengths[i] for i in batch) for batch in planned
    )
    assert sum(len(call) for call in encoder.calls) == 3  # three requests, fewer passes
    for text, out, got in zip(texts, outputs, answers):
        alone = tiny_encoder.encode([text], **{"sparse": False, "colbert": False, **out})[0]
        from m3vdb.remote import _embedding

        assert_same(_embedding(got), alone)


def test_many_clients_at_once_get_their_own_vectors(url: str, tiny_encoder: M3Encoder) -> None:
    """16 clients at once through the real batcher (no gate): each answer is its own text's."""
    texts = [f"query number {i} about {'vectors ' * (i % 5)}" for i in range(16)]
    want = tiny_encoder.encode(texts)
    barrier = threading.Barrier(len(texts))

    def call(text: str) -> dict[str, Any]:
        with httpx.Client(headers=AUTH, timeout=60) as client:
            barrier.wait()
            body = {"inputs": text, "sparse": True, "colbert": True, "encoding_format": "base64"}
            return client.post(f"{url}/encode", json=body).json()["data"][0]

    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(call, texts))
    from m3vdb.remote import _embedding

    for got, w in zip(answers, want):
        assert_same(_embedding(got), w)


def test_the_oldest_text_waits_at_most_max_skips_passes() -> None:
    """The batcher runs the fullest planned batch first, but a text passed over MAX_SKIPS
    times runs next, however many fuller batches keep arriving (no HTTP, no model)."""
    from m3vdb.serve.batcher import MAX_SKIPS, DynamicBatcher, Outputs

    class Recorder:
        token_budget = 120  # three 40-token texts fill a batch: the 10-token one never fits
        max_batch_size = 256

        def __init__(self) -> None:
            self.calls: list[list[int]] = []
            self.batcher: DynamicBatcher | None = None

        def encode_token_ids(self, ids: Sequence[Sequence[int]], **_: bool) -> list[M3Embedding]:
            self.calls.append([len(x) for x in ids])
            if len(self.calls) <= 2 * MAX_SKIPS and self.batcher is not None:
                self.batcher.submit([[7] * 40] * 3, Outputs())  # a fuller batch arrives
            return [M3Embedding(dense=np.zeros(2, np.float32)) for _ in ids]

    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_pending_inputs=1000, max_wait_s=0)
    recorder.batcher = batcher
    oldest = batcher.submit([[5] * 10], Outputs())  # 10 tokens, in a batch of its own
    batcher.submit([[7] * 40] * 3, Outputs())  # 120 tokens: fuller
    batcher.start()
    assert len(oldest.future.result(30)) == 1
    batcher.close(30)
    assert recorder.calls.index([10]) == MAX_SKIPS  # passed over exactly MAX_SKIPS times
    assert all(set(call) == {40} for call in recorder.calls if call != [10]), recorder.calls


# --------------------------------------------------------------------------- limits and errors


def test_a_full_queue_answers_429_with_retry_after(gated: tuple[str, GatedEncoder, Any]) -> None:
    base, encoder, app = gated
    encoder.hold()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a = pool.submit(httpx.post, f"{base}/embed", json={"inputs": "one"}, timeout=60)
        wait_until(encoder.entered.is_set, "the first request's forward pass")
        b = pool.submit(httpx.post, f"{base}/embed", json={"inputs": ["x", "y", "z"]}, timeout=60)
        wait_until(lambda: app.service.batcher.pending_inputs == 4, "the queue to fill")
        full = httpx.post(f"{base}/embed", json={"inputs": "one more"})
        full_openai = httpx.post(f"{base}/v1/embeddings", json={"input": "one more", "model": "m"})
        encoder.release()
        assert a.result().status_code == 200 and b.result().status_code == 200
    assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
    assert "limit of 4 (--max-pending-inputs)" in full.json()["error"]
    assert full.json()["error_type"] == "overloaded"
    assert full_openai.status_code == 429 and "Retry-After" in full_openai.headers
    assert full_openai.json()["error"]["type"] == "rate_limit_error"
    assert httpx.post(f"{base}/embed", json={"inputs": "now it fits"}).status_code == 200


def test_oversize_requests_are_413_naming_the_limit(url: str, tiny_encoder: M3Encoder) -> None:
    many = httpx.post(f"{url}/embed", json={"inputs": ["t"] * 9}, headers=AUTH)
    assert many.status_code == 413
    assert "9 texts; the limit is 8 per request (--max-inputs-per-request)" in many.json()["error"]
    long_text = "vectors " * 100
    too_long = httpx.post(f"{url}/v1/embeddings", json={"input": ["ok", long_text]}, headers=AUTH)
    assert too_long.status_code == 413
    message = too_long.json()["error"]["message"]
    assert "input[1] has" in message and "the limit is 64 per text (--max-input-tokens" in message
    cut = httpx.post(f"{url}/embed", json={"inputs": long_text, "truncate": True}, headers=AUTH)
    want = tiny_encoder.encode([long_text], max_length=64, sparse=False, colbert=False)[0]
    assert np.abs(np.array(cut.json()[0]) - want.dense).max() <= TOL
    body = httpx.post(f"{url}/embed", json={"inputs": "x" * 70_000}, headers=AUTH)
    assert body.status_code == 413 and "limit of 65536 bytes" in body.json()["error"]


def test_missing_or_wrong_api_key_is_401(url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        answer = httpx.post(f"{url}/embed", json={"inputs": "a"}, headers=headers)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
        assert "--api-key" in answer.json()["error"]
    assert httpx.get(f"{url}/metrics").status_code == 401
    with pytest.raises(openai.AuthenticationError, match="API key"):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(
            model="m", input="a"
        )


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/embed", b"{not json", "not valid JSON"),
        ("/embed", b"\xff\xfe", "not valid JSON"),
        ("/embed", b"[1, 2]", "invalid request body"),
        ("/embed", b"{}", "inputs: Field required"),
        ("/embed", b'{"inputs": null}', "got null"),
        ("/embed", b'{"inputs": {"a": 1}}', "got an object"),
        ("/embed", b'{"inputs": ["a", 3]}', "inputs[1] is a number (3)"),
        ("/embed", b'{"inputs": []}', "empty list"),
        ("/embed", b'{"inputs": "a", "truncate": "yes"}', "truncate: Input should be a valid"),
        ("/embed", b'{"inputs": "a", "normalize": false}', "normalize=false"),
        ("/embed_sparse", b'{"inputs": "a", "truncation_direction": "left"}', "'left'"),
        ("/encode", b'{"inputs": "a", "dense": false}', "nothing to compute"),
        ("/encode", b'{"inputs": "a", "colbert_dtype": "int8"}', "colbert_dtype"),
        ("/v1/embeddings", b'{"input": [[1, 2]], "model": "m"}', "token ids"),
        ("/v1/embeddings", b'{"input": "a", "encoding_format": "x"}', "encoding_format"),
        ("/v1/embeddings", b'{"model": "m"}', "input: Field required"),
        ("/v1/embeddings", b"{bad", "not valid JSON"),
    ],
)
def test_malformed_bodies_get_a_4xx_saying_what_is_wrong(
    url: str, path: str, body: bytes, says: str
) -> None:
    answer = httpx.post(
        f"{url}{path}", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["error"]
    message = error["message"] if path.startswith("/v1/") else error
    assert says in message
    if path.startswith("/v1/"):
        assert answer.status_code == 400  # OpenAI's status for invalid requests


def test_a_non_json_content_type_is_a_4xx(url: str) -> None:
    answer = httpx.post(
        f"{url}/embed", content=b"hello", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert 400 <= answer.status_code < 500 and answer.json()["error"]


# --------------------------------------------------------------------------- lifecycle


def test_a_client_that_disconnects_has_its_work_dropped(
    gated: tuple[str, GatedEncoder, Any], tiny_encoder: M3Encoder
) -> None:
    base, encoder, app = gated
    batcher = app.service.batcher
    gone_text = "this client will not wait for its answer"
    gone_ids = tiny_encoder.tokenize([gone_text])[0]
    encoder.hold()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(httpx.post, f"{base}/embed", json={"inputs": "hold"}, timeout=60)
        wait_until(encoder.entered.is_set, "the blocking request's forward pass")
        host, port = base.removeprefix("http://").split(":")
        body = json.dumps({"inputs": gone_text}).encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            wait_until(lambda: batcher.pending_inputs == 2, "the request to be queued")
        wait_until(lambda: batcher.pending_inputs == 1, "the disconnect to release its text")
        encoder.release()
        assert blocker.result().status_code == 200
    assert metric(base, "m3vdb_dropped_inputs_total") == 1
    assert all(gone_ids not in call for call in encoder.calls)


def test_graceful_shutdown_finishes_the_requests_in_flight(
    tiny_encoder: M3Encoder,
) -> None:
    encoder = GatedEncoder(tiny_encoder)
    app = create_app(encoder)  # type: ignore[arg-type]
    try:
        with running(app) as (base, server):
            encoder.hold()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    httpx.post, f"{base}/embed", json={"inputs": "in flight"}, timeout=60
                )
                wait_until(encoder.entered.is_set, "the request's forward pass")
                server.should_exit = True

                def refused() -> bool:
                    try:
                        httpx.get(f"{base}/health", timeout=1)
                    except httpx.TransportError:
                        return True
                    return False

                wait_until(refused, "the server to stop accepting connections")
                encoder.release()
                answer = pending.result()
            assert answer.status_code == 200
            want = tiny_encoder.encode(["in flight"], sparse=False, colbert=False)[0]
            assert np.abs(np.array(answer.json()[0]) - want.dense).max() <= TOL
    finally:
        encoder.release()
    assert not app.service.batcher.accepting


# --------------------------------------------------------------------------- the CLI


def test_cli_serve_builds_the_server_from_its_options(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``m3vdb serve`` loads the model and serves it with the options given (uvicorn.run is
    replaced by the in-thread server; the signal path is uvicorn's own ``should_exit``, tested
    above)."""
    from m3vdb.cli.main import main

    seen: dict[str, Any] = {}

    def fake_run(app: Any, *, host: str, port: int, log_level: str) -> None:
        seen["bind"] = (host, port)
        with running(app) as (base, _):
            seen["info"] = httpx.get(f"{base}/info", headers=AUTH).json()
            seen["without key"] = httpx.post(f"{base}/embed", json={"inputs": "a"}).status_code
            seen["with key"] = httpx.post(f"{base}/embed", json={"inputs": "a"}, headers=AUTH)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv("M3VDB_API_KEY", KEY)
    argv = ["serve", "--model", str(tiny_model_dir), "--port", "9999", "--max-input-tokens", "64"]
    assert main(argv) == 0
    assert seen["bind"] == ("127.0.0.1", 9999)  # loopback unless --host says otherwise
    assert seen["info"]["max_input_length"] == 64
    assert seen["info"]["model_id"] == str(tiny_model_dir)
    assert seen["without key"] == 401 and seen["with key"].status_code == 200
    (banner,) = capsys.readouterr().err.splitlines()  # one line at start, before any request
    assert banner.startswith(
        f"m3vdb serve: {tiny_model_dir} (torch float32) on http://127.0.0.1:9999"
    )
    assert "/v1/embeddings" in banner and "/encode" in banner


def test_cli_serve_refuses_impossible_limits_before_loading(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from m3vdb.cli.main import main

    argv = ["serve", "--model", "/nowhere", "--max-inputs-per-request", "10"]
    assert main([*argv, "--max-pending-inputs", "5"]) == 2
    assert "could never be admitted" in capsys.readouterr().err


def test_cli_commands_use_a_served_encoder(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--encoder-url``: index and search with the server's encoder, no model loaded."""
    pytest.importorskip("qdrant_client")
    from m3vdb.cli.main import main

    corpus = tmp_path / "a.txt"
    corpus.write_text("Milvus stores sparse vectors.", encoding="utf-8")
    monkeypatch.setenv("M3VDB_API_KEY", KEY)
    db = f"qdrant+local:{tmp_path / 'q'}"
    common = ["--db", db, "--encoder-url", url, "--model", "/does/not/exist"]
    assert main(["index", str(corpus), "--quiet", *common]) == 0
    assert main(["search", "sparse vectors", "--json", *common]) == 0
    out = capsys.readouterr().out
    # the CLI's path ids: relative to the working directory, absolute outside it
    assert f'"id": "{corpus}"' in out or '"id": "a.txt"' in out
