"""Binary encodings of vectors on the wire (numpy only: the remote client needs no web
framework). Little-endian float32 (or float16 for ColBERT rows), base64."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from m3vdb.schemas.data import FloatArray


def b64_float32(array: FloatArray) -> str:
    """Little-endian float32 bytes, base64 (OpenAI's ``encoding_format="base64"``)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def sparse_native(weights: dict[int, float]) -> dict[str, list[Any]]:
    keys = sorted(weights)
    return {"indices": keys, "values": [weights[k] for k in keys]}


def colbert_native(rows: FloatArray, dtype: str) -> dict[str, Any]:
    """ColBERT rows as one base64 block with its shape: an 8192-token document is one string,
    not 8191 JSON lists."""
    data = np.ascontiguousarray(rows, dtype="<f2" if dtype == "float16" else "<f4")
    return {
        "shape": list(rows.shape),
        "dtype": dtype,
        "data": base64.b64encode(data.tobytes()).decode(),
    }


def decode_colbert(value: dict[str, Any]) -> FloatArray:
    """The inverse of :func:`colbert_native` (float32 whatever the wire dtype)."""
    dtype = "<f2" if value["dtype"] == "float16" else "<f4"
    flat = np.frombuffer(base64.b64decode(value["data"]), dtype=dtype)
    return flat.reshape(value["shape"]).astype(np.float32)


def decode_float32(data: str) -> FloatArray:
    """The inverse of :func:`b64_float32`."""
    return np.frombuffer(base64.b64decode(data), dtype="<f4").astype(np.float32)
