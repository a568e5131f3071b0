"""``RemoteEncoder`` against a server that answers wrongly (issue 26, item 2): every answer is
checked against what was asked, and a broken one is a BackendError saying what the server
sent; nothing is written from it, and a search fails the same way.

The server is a REAL HTTP server on 127.0.0.1 (``http.server`` in a thread) that answers
``/info`` and ``/encode`` like ``m3vdb serve`` would (synthetic vectors, deterministic in the
text), then applies one breakage to the answer.

Troubleshooting: a raw ValueError / KeyError / binascii.Error means a decode path in
``m3vdb/remote.py`` or ``m3vdb/schemas/codec.py`` is not checked; "stored" means upsert wrote
vectors from an answer that should have been refused.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from m3vdb import Document, RemoteEncoder, connect
from m3vdb.errors import BackendError

pytest.importorskip("httpx", reason="httpx is in the serve extra")

DIM = 4
INFO = {
    "model_id": "fake",
    "dense_dim": DIM,
    "colbert_dim": DIM,
    "max_input_length": 64,
    "max_client_batch_size": 8,
}
Breakage = Callable[[dict[str, Any]], Any]


def _b64(array: np.ndarray, dtype: str = "<f4") -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def _vectors(text: str) -> tuple[np.ndarray, dict[int, float], np.ndarray]:
    rng = np.random.default_rng(sum(text.encode()) + len(text))
    dense = rng.normal(size=DIM).astype(np.float32)
    dense /= np.linalg.norm(dense)
    words = text.split() or ["_"]
    sparse = {10 + (sum(w.encode()) % 1000): 0.5 + i for i, w in enumerate(dict.fromkeys(words))}
    colbert = rng.normal(size=(len(words) + 1, DIM)).astype(np.float32)
    colbert /= np.linalg.norm(colbert, axis=1, keepdims=True)
    return dense, sparse, colbert


def _answer(texts: list[str]) -> dict[str, Any]:
    data = []
    for i, text in enumerate(texts):
        dense, sparse, colbert = _vectors(text)
        keys = sorted(sparse)
        data.append(
            {
                "index": i,
                "dense": _b64(dense),
                "sparse": {"indices": keys, "values": [sparse[k] for k in keys]},
                "colbert": {
                    "shape": list(colbert.shape),
                    "dtype": "float32",
                    "data": _b64(colbert),
                },
            }
        )
    return {"model": "fake", "data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}


class _Fake:
    def __init__(self) -> None:
        self.info: Any = dict(INFO)
        self.breakage: Breakage = lambda answer: answer
        self.raw: tuple[str, bytes] | None = None  # (content type, body) instead of JSON


@pytest.fixture()
def fake() -> Iterator[tuple[str, _Fake]]:
    state = _Fake()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _send(self, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._send(json.dumps(state.info).encode())

        def do_POST(self) -> None:  # noqa: N802
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.raw is not None:
                self._send(state.raw[1], state.raw[0])
                return
            broken = state.breakage(_answer(request["inputs"]))
            self._send(json.dumps(broken).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


TEXTS = ["first text here", "second", "a third one"]


def _item(answer: dict[str, Any], i: int = 0) -> dict[str, Any]:
    item: dict[str, Any] = answer["data"][i]
    return item


def _set(answer: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    change(_item(answer))
    return answer


BROKEN: dict[str, Breakage] = {
    "fewer-items": lambda a: {**a, "data": a["data"][:-1]},
    "more-items": lambda a: {**a, "data": a["data"] + a["data"][:1]},
    "no-data": lambda a: {"model": "fake"},
    "data-not-a-list": lambda a: {**a, "data": {"0": a["data"][0]}},
    "not-an-object": lambda a: ["x"],
    "item-not-an-object": lambda a: {**a, "data": ["x"] * len(a["data"])},
    "index-missing": lambda a: _set(a, lambda it: it.pop("index")),
    "index-duplicate": lambda a: _set(a, lambda it: it.update(index=1)),
    "index-out-of-range": lambda a: _set(a, lambda it: it.update(index=99)),
    "index-bool": lambda a: _set(a, lambda it: it.update(index=False)),
    "sparse-unequal-lengths": lambda a: _set(a, lambda it: it["sparse"]["values"].pop()),
    "sparse-duplicate-index": lambda a: _set(
        a, lambda it: it["sparse"].update(indices=[5] * len(it["sparse"]["indices"]))
    ),
    "sparse-negative-index": lambda a: _set(
        a, lambda it: it["sparse"]["indices"].__setitem__(0, -3)
    ),
    "sparse-huge-index": lambda a: _set(
        a, lambda it: it["sparse"]["indices"].__setitem__(0, 2**40)
    ),
    "sparse-nan": lambda a: _set(a, lambda it: it["sparse"]["values"].__setitem__(0, "NaN")),
    "sparse-missing": lambda a: _set(a, lambda it: it.pop("sparse")),
    "dense-bad-base64": lambda a: _set(a, lambda it: it.update(dense="!!not base64!!")),
    "dense-wrong-dim": lambda a: _set(a, lambda it: it.update(dense=_b64(np.ones(DIM + 1)))),
    "dense-nan": lambda a: _set(a, lambda it: it.update(dense=_b64(np.full(DIM, np.nan)))),
    "dense-missing": lambda a: _set(a, lambda it: it.pop("dense")),
    "dense-odd-bytes": lambda a: _set(
        a, lambda it: it.update(dense=base64.b64encode(b"12345").decode())
    ),
    "colbert-shape-lies": lambda a: _set(
        a, lambda it: it["colbert"].update(shape=[it["colbert"]["shape"][0] + 1, DIM])
    ),
    "colbert-dtype-lies": lambda a: _set(a, lambda it: it["colbert"].update(dtype="float16")),
    "colbert-unknown-dtype": lambda a: _set(a, lambda it: it["colbert"].update(dtype="int8")),
    "colbert-wrong-dim": lambda a: _set(
        a,
        lambda it: it["colbert"].update(shape=[it["colbert"]["shape"][0] * DIM // 2, 2]),
    ),
    "colbert-bad-base64": lambda a: _set(a, lambda it: it["colbert"].update(data="%%%")),
    "colbert-not-an-object": lambda a: _set(a, lambda it: it.update(colbert=[[1.0] * DIM])),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_encode_answer_is_a_backend_error(fake: tuple[str, _Fake], case: str) -> None:
    url, state = fake
    state.breakage = BROKEN[case]
    with RemoteEncoder(url, max_retries=0) as remote:
        with pytest.raises(BackendError, match="does not match the request") as info:
            remote.encode(TEXTS)
    assert url in str(info.value)


def test_an_html_page_with_status_200_is_a_backend_error(fake: tuple[str, _Fake]) -> None:
    url, state = fake
    state.raw = ("text/html", b"<html><body>Welcome to nginx!</body></html>")
    with RemoteEncoder(url, max_retries=0) as remote:
        with pytest.raises(BackendError, match="not JSON .*text/html"):
            remote.encode(TEXTS)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dense_dim", -4),
        ("dense_dim", "4"),
        ("colbert_dim", 0),
        ("max_client_batch_size", 0),
        ("max_input_length", 2.5),
        ("max_client_batch_size", True),
        ("model_id", None),
    ],
)
def test_a_bad_info_is_a_backend_error(fake: tuple[str, _Fake], key: str, value: Any) -> None:
    url, state = fake
    state.info[key] = value
    with pytest.raises(BackendError, match=f"/info does not describe.*{key}"):
        RemoteEncoder(url, max_retries=0)


def test_info_that_is_not_an_object_is_a_backend_error(fake: tuple[str, _Fake]) -> None:
    url, state = fake
    state.info = ["not", "an", "object"]
    with pytest.raises(BackendError, match="/info does not describe"):
        RemoteEncoder(url, max_retries=0)


def test_items_in_another_order_are_placed_by_their_index(fake: tuple[str, _Fake]) -> None:
    """Reversed ``data`` with each item's own ``index``: the vectors land on their texts."""
    url, state = fake
    state.breakage = lambda a: {**a, "data": a["data"][::-1]}
    with RemoteEncoder(url, max_retries=0) as remote:
        got = remote.encode(TEXTS)
    for text, emb in zip(TEXTS, got):
        dense, sparse, colbert = _vectors(text)
        assert emb.dense is not None and np.array_equal(emb.dense, dense)
        assert emb.sparse == sparse
        assert emb.colbert is not None and np.array_equal(emb.colbert, colbert)


@pytest.mark.parametrize("case", ["sparse-unequal-lengths", "index-missing", "fewer-items"])
def test_nothing_is_written_and_searches_fail_the_same_way(
    fake: tuple[str, _Fake], case: str
) -> None:
    pytest.importorskip("qdrant_client")
    url, state = fake
    with RemoteEncoder(url, max_retries=0) as remote:
        with connect("qdrant+memory://", collection="docs", encoder=remote) as store:
            store.upsert([Document("seed", "seed text", {})])
            state.breakage = BROKEN[case]
            docs = [Document(f"d{i}", t, {}) for i, t in enumerate(TEXTS)]
            with pytest.raises(BackendError, match="does not match the request"):
                store.upsert(docs)
            assert store.count() == 1, "stored vectors from a refused answer"
            with pytest.raises(BackendError, match="does not match the request"):
                store.search("a third one", k=3)
