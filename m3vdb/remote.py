"""``RemoteEncoder``: the encoder served by ``m3vdb serve``, behind the same contract as
``M3Encoder`` (the ``Encoder`` protocol), so many processes share one loaded model::

    from m3vdb import RemoteEncoder, connect
    store = connect("docs.db", collection="docs", encoder=RemoteEncoder("http://host:8080"))

It talks to the server's native ``POST /encode`` route: dense as base64 float32, sparse as
ids and weights, ColBERT as base64 float32 with its shape, so outputs arrive bit-identical to
what the server computed. Needs httpx (``pip install 'm3vdb[serve]'``), imported on first use;
no torch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from m3vdb.errors import BackendError, InputError, MissingDependencyError
from m3vdb.schemas.codec import WireError, decode_colbert, decode_float32
from m3vdb.schemas.data import M3Embedding, WindowEmbedding

_RETRY_STATUSES = (429, 502, 503, 504)


class RemoteEncoder:
    """An ``m3vdb serve`` server as an encoder: ``encode`` equals the server's
    ``M3Encoder.encode`` on the same texts (within fp32 batching noise: the server batches
    texts of many clients together).

    Args:
        url: the server, e.g. ``"http://127.0.0.1:8080"``.
        api_key: the server's ``--api-key`` (default: ``$M3VDB_API_KEY``, if set).
        timeout: seconds to wait for one HTTP response.
        max_retries: retries of a request the server refused for now (429 with
            ``Retry-After``, 502-504) or that could not connect, with backoff.
        truncate: cut texts longer than the server's ``max_input_length`` at that length, as
            ``M3Encoder.encode`` does at the model's length (False: such a text is an
            ``InputError``).

    Attributes:
        dense_dim, colbert_dim, max_length, model_name: read from the server's ``/info`` once.

    Raises:
        BackendError: the server cannot be reached or is not an ``m3vdb serve`` server.
        InputError: the server refused the API key.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_retries: int = 5,
        truncate: bool = True,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError("httpx", "serve", "m3vdb.RemoteEncoder") from exc
        self.url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("M3VDB_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.max_retries = max_retries
        self.truncate = truncate
        info = self._request("GET", "/info")
        try:
            self.dense_dim = _positive_int(info, "dense_dim")
            self.colbert_dim = _positive_int(info, "colbert_dim")
            self.max_length = _positive_int(info, "max_input_length")
            self._per_request = _positive_int(info, "max_client_batch_size")
            model = info.get("model_id")
            if not isinstance(model, str):
                raise _Bad(f"model_id is {model!r:.60}, not a string")
            self.model_name = model
        except _Bad as exc:
            self._client.close()
            raise BackendError(
                f"{self.url}/info does not describe an m3vdb serve server ({exc}); check the URL "
                "points at 'm3vdb serve', not another embedding server"
            ) from exc

    def __repr__(self) -> str:
        return f"RemoteEncoder({self.url!r}, model={self.model_name!r})"

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the HTTP connections."""
        self._client.close()

    def encode(
        self,
        texts: Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
    ) -> list[M3Embedding]:
        """One ``M3Embedding`` per text, in input order, with the requested outputs set and the
        others None; long lists go as several requests of the server's
        ``max_client_batch_size``.

        Raises:
            TypeError: ``texts`` is not a list of str (the message names the bad index).
            InputError: no output requested, or the server refused the input.
            BackendError: the server failed or stayed overloaded through every retry.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                "texts must be a list of strings, not a single string: wrap it as [text]"
            )
        if not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is a {type(text).__name__}, not a str")
        if not (dense or sparse or colbert):
            raise InputError("nothing to compute: set at least one of dense, sparse, colbert")
        out: list[M3Embedding] = []
        for start in range(0, len(texts), self._per_request):
            chunk = list(texts[start : start + self._per_request])
            body = {
                "inputs": chunk,
                "dense": dense,
                "sparse": sparse,
                "colbert": colbert,
                "encoding_format": "base64",
                "colbert_dtype": "float32",
                "truncate": self.truncate,
            }
            answer = self._request("POST", "/encode", json=body)
            try:
                out.extend(self._embeddings(answer, len(chunk), dense, sparse, colbert))
            except _Bad as exc:
                raise BackendError(
                    f"{self.url}/encode sent an answer that does not match the request "
                    f"({len(chunk)} texts, dense={dense}, sparse={sparse}, "
                    f"colbert={colbert}): {exc}; nothing was used from it. Check that the URL "
                    "points at 'm3vdb serve' and that both run the same m3vdb version"
                ) from exc
        return out

    def encode_windows(
        self,
        texts: Sequence[str],
        *,
        window_tokens: int = 512,
        overlap_tokens: int = 64,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> list[WindowEmbedding]:
        """``M3Encoder.encode_windows`` on the server: each text split into overlapping token
        windows by the server's tokenizer and encoded window by window (``/encode`` with
        ``window_tokens``), so ``m3vdb index --encoder-url`` stores long documents as the
        same windows a local model gives. One request per text; ``progress`` is called after
        each with the tokens it encoded.

        Raises:
            InputError: window sizes out of the server's range, or no output requested.
            BackendError: the server failed or sent an answer that does not match.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of strings, not a single string")
        if not (dense or sparse or colbert):
            raise InputError("nothing to compute: set at least one of dense, sparse, colbert")
        out: list[WindowEmbedding] = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is a {type(text).__name__}, not a str")
            body = {
                "inputs": [text],
                "dense": dense,
                "sparse": sparse,
                "colbert": colbert,
                "encoding_format": "base64",
                "colbert_dtype": "float32",
                "window_tokens": window_tokens,
                "overlap_tokens": overlap_tokens,
            }
            answer = self._request("POST", "/encode", json=body)
            try:
                windows = self._windows(answer, text, index, dense, sparse, colbert)
            except (_Bad, WireError) as exc:
                raise BackendError(
                    f"{self.url}/encode sent windows that do not match the request: {exc}; "
                    "check that both run the same m3vdb version"
                ) from exc
            out += windows
            if progress is not None:
                progress(sum(w.token_end - w.token_start + 2 for w in windows))
        return out

    def _windows(
        self, answer: Any, text: str, text_index: int, dense: bool, sparse: bool, colbert: bool
    ) -> list[WindowEmbedding]:
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise _Bad(f"the body has no 'data' list: {_short(answer)}")
        data = answer["data"]
        if not data:
            raise _Bad("no window for the text")
        embeddings = self._embeddings(answer, len(data), dense, sparse, colbert)
        spans: list[dict[str, int] | None] = [None] * len(data)
        for item in data:
            span = item.get("window")
            keys = ("text_index", "token_start", "token_end", "char_start", "char_end")
            if not isinstance(span, dict) or not all(
                isinstance(span.get(k), int) and not isinstance(span.get(k), bool) for k in keys
            ):
                raise _Bad(f"data[{item['index']}] has no window span: {_short(span)}")
            if span["text_index"] != 0 or not (
                0 <= span["char_start"] <= span["char_end"] <= len(text)
                and 0 <= span["token_start"] <= span["token_end"]
            ):
                raise _Bad(f"data[{item['index']}] has a window outside the text: {span}")
            spans[item["index"]] = span
        return [
            WindowEmbedding(
                text_index,
                span["token_start"],
                span["token_end"],
                span["char_start"],
                span["char_end"],
                text[span["char_start"] : span["char_end"]],
                emb,
            )
            for span, emb in zip(spans, embeddings)
            if span is not None
        ]

    def _embeddings(
        self, answer: Any, count: int, dense: bool, sparse: bool, colbert: bool
    ) -> list[M3Embedding]:
        """The embeddings of one ``/encode`` answer, in request order, each checked against
        what was asked (raises :class:`_Bad` saying what the server sent)."""
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise _Bad(f"the body has no 'data' list: {_short(answer)}")
        data = answer["data"]
        if len(data) != count:
            raise _Bad(f"'data' holds {len(data)} items for {count} texts")
        placed: list[M3Embedding | None] = [None] * count
        for position, item in enumerate(data):
            if not isinstance(item, dict):
                raise _Bad(f"data[{position}] is {_short(item)}, not an object")
            index = item.get("index")
            if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count):
                raise _Bad(f"data[{position}] has index {index!r:.40}, not an int in [0, {count})")
            if placed[index] is not None:
                raise _Bad(f"data[{position}] repeats index {index}")
            try:
                placed[index] = M3Embedding(
                    dense=self._dense(item) if dense else None,
                    sparse=_sparse(item) if sparse else None,
                    colbert=self._colbert(item) if colbert else None,
                )
            except (_Bad, WireError) as exc:
                raise _Bad(f"data[{position}] (index {index}): {exc}") from exc
        return [e for e in placed if e is not None]

    def _dense(self, item: dict[str, Any]) -> np.ndarray:
        value = item.get("dense")
        if isinstance(value, list):
            vector = _finite_floats(value, "dense")
        else:
            vector = decode_float32(value)
        if vector.shape != (self.dense_dim,):
            raise _Bad(f"dense has {vector.size} values, /info says dense_dim={self.dense_dim}")
        if not np.isfinite(vector).all():
            raise _Bad("dense holds NaN or infinity")
        return vector

    def _colbert(self, item: dict[str, Any]) -> np.ndarray:
        rows = decode_colbert(item.get("colbert"))
        if rows.shape[1] != self.colbert_dim:
            raise _Bad(
                f"colbert rows have {rows.shape[1]} values, /info says "
                f"colbert_dim={self.colbert_dim}"
            )
        if not np.isfinite(rows).all():
            raise _Bad("colbert holds NaN or infinity")
        return rows

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids the server computes for ``texts`` (special tokens included, cut at
        its ``max_input_length`` when ``truncate``), as ``M3Encoder.tokenize`` does."""
        out: list[list[int]] = []
        for start in range(0, len(texts), self._per_request):
            chunk = list(texts[start : start + self._per_request])
            body = {
                "inputs": chunk,
                "truncate": self.truncate,
            }
            answer = self._request("POST", "/tokenize", json=body)
            try:
                out.extend(_token_ids(answer, len(chunk)))
            except _Bad as exc:
                raise BackendError(
                    f"{self.url}/tokenize sent an answer that does not match the request "
                    f"({len(chunk)} texts): {exc}"
                ) from exc
        return out

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of one call, retried while the server says "later"."""
        httpx = self._httpx
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise BackendError(
                        f"cannot reach the m3vdb server at {self.url} ({type(exc).__name__}: "
                        f"{exc}); check the URL and that 'm3vdb serve' is running",
                        retriable=True,
                    ) from exc
                time.sleep(min(2**attempt * 0.25, 8.0))
                continue
            if response.status_code in _RETRY_STATUSES and not last:
                time.sleep(_retry_delay(response, attempt))
                continue
            return self._checked(response, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(self, response: Any, path: str) -> Any:
        status = response.status_code
        if status < 400:
            try:
                return response.json()
            except ValueError as exc:  # JSONDecodeError, or a body that is not UTF-8
                kind = response.headers.get("content-type", "no content type")
                raise BackendError(
                    f"{self.url}{path} answered HTTP {status} with a body that is not JSON "
                    f"({kind}): {response.text[:80]!r}; check that the URL points at "
                    "'m3vdb serve' (not a proxy's or another server's page)"
                ) from exc
        try:
            error = response.json().get("error")
            message = error if isinstance(error, str) else str(error)
        except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
            message = response.text[:200]
        where = f"{self.url}{path}"
        if status == 401:
            raise InputError(
                f"{where} refused the API key ({message}); pass api_key= (or set "
                "M3VDB_API_KEY) to the key the server was started with"
            )
        if status in (400, 404, 405, 413, 422):
            raise InputError(f"{where} refused the request (HTTP {status}): {message}")
        raise BackendError(
            f"{where} failed (HTTP {status}): {message}", retriable=status in _RETRY_STATUSES
        )


def _retry_delay(response: Any, attempt: int) -> float:
    value = response.headers.get("retry-after", "")
    if value.isdigit():
        return min(float(value), 60.0)
    return min(2**attempt * 0.25, 8.0)


class _Bad(Exception):
    """An answer that does not match the request (becomes a BackendError naming the route)."""


def _short(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.80}"


def _positive_int(info: Any, key: str) -> int:
    value = info.get(key) if isinstance(info, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _Bad(f"{key} is {value!r:.40}, not a positive integer")
    return value


def _finite_floats(values: list[Any], what: str) -> np.ndarray:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise _Bad(f"{what} holds values that are not numbers: {values!r:.60}")
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise _Bad(f"{what} holds NaN or infinity")
    return array.astype(np.float32)


def _embedding(item: dict[str, Any]) -> M3Embedding:
    """The outputs one ``/encode`` item holds, decoded (dimensions not checked: for callers
    that read the wire format directly; :meth:`RemoteEncoder.encode` checks everything)."""
    dense = item.get("dense")
    return M3Embedding(
        dense=None
        if dense is None
        else _finite_floats(dense, "dense")
        if isinstance(dense, list)
        else decode_float32(dense),
        sparse=None if item.get("sparse") is None else _sparse(item),
        colbert=None if item.get("colbert") is None else decode_colbert(item["colbert"]),
    )


def _token_ids(answer: Any, count: int) -> list[list[int]]:
    if not isinstance(answer, list) or len(answer) != count:
        raise _Bad(f"expected a list of {count} token lists, got {_short(answer)}")
    out = []
    for position, tokens in enumerate(answer):
        if not isinstance(tokens, list) or not all(
            isinstance(t, dict) and isinstance(t.get("id"), int) for t in tokens
        ):
            raise _Bad(f"item {position} is {_short(tokens)}, not a list of {{'id': int}}")
        out.append([t["id"] for t in tokens])
    return out


_MAX_TOKEN_ID = 2**32 - 1  # the widest sparse key any backend stores (Milvus: uint32)


def _sparse(item: dict[str, Any]) -> dict[int, float]:
    value = item.get("sparse")
    if not isinstance(value, dict):
        raise _Bad(f"sparse is {_short(value)}, not an object with indices and values")
    indices, values = value.get("indices"), value.get("values")
    if not isinstance(indices, list) or not isinstance(values, list):
        raise _Bad(f"sparse has no 'indices' and 'values' lists: {value!r:.80}")
    if len(indices) != len(values):
        raise _Bad(f"sparse has {len(indices)} indices and {len(values)} values")
    for token in indices:
        if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token <= _MAX_TOKEN_ID:
            raise _Bad(f"sparse index {token!r:.40} is not a token id in [0, 2**32)")
    if len(set(indices)) != len(indices):
        raise _Bad("sparse indices repeat a token id")
    weights = _finite_floats(values, "sparse values")
    if (weights <= 0).any():
        raise _Bad("sparse values hold a weight <= 0 (BGE-M3 sends positive weights only)")
    return {int(k): float(v) for k, v in zip(indices, values)}
