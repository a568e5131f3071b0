"""Binary encodings of vectors on the wire (numpy only: the remote client needs no web
framework). Little-endian float32 (or float16 for ColBERT rows), base64."""

from __future__ import annotations

import base64
import binascii
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


class WireError(ValueError):
    """A wire value that does not decode to what its fields say (the message says what)."""


def _b64(data: object, what: str) -> bytes:
    if not isinstance(data, str):
        raise WireError(f"{what} is {type(data).__name__} {data!r:.40}, not a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what} is not valid base64 ({exc}): {data!r:.40}") from exc


def decode_colbert(value: object) -> FloatArray:
    """The inverse of :func:`colbert_native` (float32 whatever the wire dtype).

    Raises:
        WireError: not an object with a 2-d ``shape`` of non-negative ints, a ``dtype`` of
            ``float32`` / ``float16`` and base64 ``data`` of exactly that many values.
    """
    if not isinstance(value, dict):
        raise WireError(f"colbert is {type(value).__name__} {value!r:.40}, not an object")
    wire_dtype, shape = value.get("dtype"), value.get("shape")
    if wire_dtype not in ("float32", "float16"):
        raise WireError(f"colbert dtype is {wire_dtype!r}, not 'float32' or 'float16'")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise WireError(f"colbert shape is {shape!r:.40}, not [rows, dim] of non-negative ints")
    dtype = np.dtype("<f2" if wire_dtype == "float16" else "<f4")
    raw = _b64(value.get("data"), "colbert data")
    if len(raw) != shape[0] * shape[1] * dtype.itemsize:
        raise WireError(
            f"colbert data holds {len(raw)} bytes; shape {shape} of {wire_dtype} needs "
            f"{shape[0] * shape[1] * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float32)


def decode_float32(data: object) -> FloatArray:
    """The inverse of :func:`b64_float32`.

    Raises:
        WireError: not base64, or not a whole number of float32 values.
    """
    raw = _b64(data, "dense")
    if len(raw) % 4:
        raise WireError(f"dense holds {len(raw)} bytes, not a whole number of float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)
