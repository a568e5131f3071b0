"""Wire formats: request bodies (validated strictly: no silent coercion of "1" to 1 or
"yes" to true), the JSON shapes of each family of routes, and their error bodies.

Families: OpenAI (``/v1/...``: errors as ``{"error": {"message", "type", "param", "code"}}``),
TEI (``/embed``, ``/embed_sparse``, ``/embed_all``, ``/info``...: errors as
``{"error": message, "error_type": type}``) and the native ``/encode`` (TEI's error shape).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from m3vdb.schemas.codec import b64_float32
from m3vdb.schemas.data import FloatArray
from m3vdb.schemas.strings import unicode_problem

# --------------------------------------------------------------------------- requests


class _Body(BaseModel):
    # strict: a JSON "true" string is not a bool, 1 is not a string; unknown fields are
    # ignored (clients send extras such as OpenAI's "user")
    model_config = ConfigDict(strict=True, extra="ignore")


class OpenAIEmbeddingRequest(_Body):
    """OpenAI's ``POST /v1/embeddings`` body."""

    input: Any
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    user: StrictStr | None = None


class TEIRequest(_Body):
    """text-embeddings-inference's ``/embed``, ``/embed_sparse`` and ``/embed_all`` body."""

    inputs: Any
    normalize: StrictBool = True
    truncate: StrictBool | None = False
    truncation_direction: StrictStr = "right"
    prompt_name: StrictStr | None = None
    dimensions: StrictInt | None = None


class TokenizeRequest(_Body):
    """TEI's ``POST /tokenize`` body; ``truncate`` (an extension) cuts at the server's
    ``max_input_length`` as the encoding routes do."""

    inputs: Any
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None
    truncate: StrictBool = False


class EncodeRequest(_Body):
    """The native ``POST /encode`` body: any subset of the three outputs from one pass."""

    # m3vdb's own route: no foreign client sends extras, so a misspelt option is refused
    model_config = ConfigDict(strict=True, extra="forbid")

    inputs: Any
    dense: StrictBool = True
    sparse: StrictBool = False
    colbert: StrictBool = False
    encoding_format: Literal["float", "base64"] = "float"
    colbert_dtype: Literal["float32", "float16"] = "float32"
    truncate: StrictBool = False
    # windows: each text split into overlapping token windows of this many tokens (special
    # tokens included), each encoded on its own, as M3Encoder.encode_windows does
    window_tokens: StrictInt | None = None
    overlap_tokens: StrictInt = 64


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as JSON in the route family's shape.

    Attributes:
        status: the HTTP status.
        message: what was found, what was expected, what to do.
        kind: ``validation``, ``authentication``, ``overloaded``, ``unavailable`` or ``backend``.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}


_OPENAI_TYPES = {
    "validation": "invalid_request_error",
    "authentication": "invalid_request_error",
    "overloaded": "rate_limit_error",
    "unavailable": "server_error",
    "backend": "server_error",
}
_OPENAI_CODES = {"authentication": "invalid_api_key", "overloaded": "rate_limit_exceeded"}


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/")


def error_body(path: str, message: str, kind: str) -> dict[str, Any]:
    """The error JSON of the family that ``path`` belongs to."""
    if is_openai_path(path):
        return {
            "error": {
                "message": message,
                "type": _OPENAI_TYPES.get(kind, "invalid_request_error"),
                "param": None,
                "code": _OPENAI_CODES.get(kind),
            }
        }
    return {"error": message, "error_type": kind}


def dumps(obj: Any) -> bytes:
    """Compact JSON (floats as their shortest round-trip repr: float32 values survive)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- inputs


def texts_from(value: Any, field: str) -> list[str]:
    """The texts of an ``input`` / ``inputs`` field: a string or a non-empty list of strings.

    Raises:
        ApiError: anything else, naming what was found (422).
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ApiError(
            422,
            f"{field} must be a string or a list of strings, got {_json_type(value)}",
            "validation",
        )
    if not value:
        raise ApiError(422, f"{field} is an empty list: send at least one text", "validation")
    if all(isinstance(x, int) and not isinstance(x, bool) for x in value) or all(
        isinstance(x, list) for x in value
    ):
        raise ApiError(
            422,
            f"{field} holds token ids; this server takes text only (its tokenizer is BGE-M3's, "
            "not tiktoken's): send strings (LangChain's OpenAIEmbeddings: set "
            "check_embedding_ctx_length=False)",
            "validation",
        )
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ApiError(
                422,
                f"{field}[{index}] is {_json_type(item)}, not a string: send a list of strings",
                "validation",
            )
        problem = unicode_problem(item)
        if problem is not None:  # JSON's "\ud800" escape parses, but no tokenizer takes it
            raise ApiError(422, f"{field}[{index}] {problem}", "validation")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- outputs


def dense_value(vector: FloatArray, encoding_format: str) -> list[float] | str:
    return b64_float32(vector) if encoding_format == "base64" else vector.tolist()


def sparse_tei(weights: dict[int, float]) -> list[dict[str, float | int]]:
    """TEI's sparse shape: ``[{"index": token_id, "value": weight}]``, ids ascending."""
    return [{"index": k, "value": weights[k]} for k in sorted(weights)]
