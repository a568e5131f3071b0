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
from collections.abc import Sequence
from typing import Any

import numpy as np

from m3vdb.schemas.data import M3Embedding
from m3vdb.schemas.errors import BackendError, InputError, MissingDependencyError
from m3vdb.serve.codec import decode_colbert, decode_float32

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
            self.dense_dim = int(info["dense_dim"])
            self.colbert_dim = int(info["colbert_dim"])
            self.max_length = int(info["max_input_length"])
            self.model_name = str(info["model_id"])
            self._per_request = int(info["max_client_batch_size"])
        except (KeyError, TypeError, ValueError) as exc:
            self._client.close()
            raise BackendError(
                f"{self.url}/info does not describe an m3vdb serve server (missing or bad "
                f"{exc}); check the URL points at 'm3vdb serve', not another embedding server"
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
            body = {
                "inputs": list(texts[start : start + self._per_request]),
                "dense": dense,
                "sparse": sparse,
                "colbert": colbert,
                "encoding_format": "base64",
                "colbert_dtype": "float32",
                "truncate": self.truncate,
            }
            answer = self._request("POST", "/encode", json=body)
            out.extend(_embedding(item) for item in answer["data"])
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids the server computes for ``texts`` (special tokens included, cut at
        its ``max_input_length`` when ``truncate``), as ``M3Encoder.tokenize`` does."""
        out: list[list[int]] = []
        for start in range(0, len(texts), self._per_request):
            body = {
                "inputs": list(texts[start : start + self._per_request]),
                "truncate": self.truncate,
            }
            out.extend(
                [t["id"] for t in tokens]
                for tokens in self._request("POST", "/tokenize", json=body)
            )
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
            return response.json()
        try:
            error = response.json().get("error")
            message = error if isinstance(error, str) else str(error)
        except ValueError:
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


def _embedding(item: dict[str, Any]) -> M3Embedding:
    dense = item.get("dense")
    sparse = item.get("sparse")
    colbert = item.get("colbert")
    return M3Embedding(
        dense=None
        if dense is None
        else decode_float32(dense)
        if isinstance(dense, str)
        else np.asarray(dense, dtype=np.float32),
        sparse=None
        if sparse is None
        else {int(k): float(v) for k, v in zip(sparse["indices"], sparse["values"])},
        colbert=None if colbert is None else decode_colbert(colbert),
    )
