"""The server's error paths (issue 26, item 3): an empty API key is refused wherever it comes
from; every body error, invalid Unicode included, is a 4xx in the route family's documented
shape (OpenAI: ``{"error": {"message", "type", "param", "code"}}``; TEI and ``/encode``:
``{"error": message, "error_type": type}``), never FastAPI's ``{"detail": ...}`` or a 500.

The server is the real application on the tiny checkpoint, served by uvicorn on a loopback
port in a thread (``test_serve.running``), talked to by httpx.

Troubleshooting: a ``detail`` key means an error escaped the app's exception handlers
(``m3vdb/serve/app.py``: ``invalid_body`` / ``http_error``); a 500 on a body means a decode
error reached a route.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator

import httpx
import pytest
from test_serve import running

from m3vdb.encoder import M3Encoder
from m3vdb.errors import InputError
from m3vdb.serve import ServeConfig, create_app

pytest.importorskip("fastapi", reason="fastapi is in the serve extra")
cli_main = importlib.import_module("m3vdb.cli.main")  # the module (m3vdb.cli.main is main())

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def app(tiny_encoder: M3Encoder) -> Iterator[str]:
    """The server's base URL."""
    with running(create_app(tiny_encoder, ServeConfig(model_name="tiny", api_key=KEY))) as (
        base,
        _,
    ):
        yield base


def _post(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, headers=AUTH)


def _assert_family_shape(path: str, answer: httpx.Response, says: str) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    body = answer.json()
    assert "detail" not in body, f"FastAPI's shape leaked: {body}"
    if path.startswith("/v1/"):
        assert answer.status_code == 400, answer.status_code
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert error["type"] == "invalid_request_error"
        message = error["message"]
    else:
        assert set(body) == {"error", "error_type"}, body
        assert body["error_type"] == "validation"
        message = body["error"]
    assert says in message, message


ROUTES = ("/v1/embeddings", "/embed", "/embed_sparse", "/embed_all", "/tokenize", "/encode")


def _text_field(path: str) -> str:
    return "input" if path.startswith("/v1/") else "inputs"


@pytest.mark.parametrize("path", ROUTES)
def test_a_lone_surrogate_escape_is_a_4xx_in_the_family_shape(app: str, path: str) -> None:
    """``"\\ud800"`` is valid JSON syntax but not Unicode: today a 500."""
    body = b'{"%s": ["ok", "bad \\ud800 text"]}' % _text_field(path).encode()
    _assert_family_shape(path, _post(app, path, body), "not valid Unicode")


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{bad", "not valid JSON"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "JSON object"),
    ],
)
def test_body_parse_errors_answer_the_family_shape(
    app: str, path: str, body: bytes, says: str
) -> None:
    _assert_family_shape(path, _post(app, path, body), says)


def test_unknown_keys_in_encode_are_refused(app: str) -> None:
    """``/encode`` is m3vdb's own route: a misspelt option (``colbert_dtyp``) is a 422 naming
    it, not silently ignored."""
    answer = _post(app, "/encode", b'{"inputs": "a", "colbert_dtyp": "float16"}')
    assert answer.status_code == 422, answer.text
    assert "colbert_dtyp" in answer.json()["error"]


def test_unknown_keys_in_the_openai_and_tei_routes_stay_accepted(app: str) -> None:
    """Their clients send extras (OpenAI's ``user``, TEI's ``truncation_direction``...)."""
    assert _post(app, "/v1/embeddings", b'{"input": "a", "model": "m", "extra": 1}').is_success
    assert _post(app, "/embed", b'{"inputs": "a", "extra": 1}').is_success


def test_an_empty_api_key_is_refused_like_one_of_spaces() -> None:
    for key in ("", " ", "\t"):
        with pytest.raises(InputError, match="api_key is empty"):
            ServeConfig(api_key=key)


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_cli_serve_refuses_an_empty_key(
    how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``m3vdb serve --api-key ''`` and ``M3VDB_API_KEY=''`` started with NO authentication;
    both now exit 2 before loading a model (the model path does not exist)."""
    argv = ["serve", "--model", "/nonexistent-model"]
    if how == "flag":
        argv += ["--api-key", ""]
        monkeypatch.delenv("M3VDB_API_KEY", raising=False)
    else:
        monkeypatch.setenv("M3VDB_API_KEY", "")
    assert cli_main.main(argv) != 0
    err = capsys.readouterr().err
    assert "api_key is empty" in err, err


def test_argparse_namespace_is_what_cmd_serve_reads() -> None:
    """Guards the test above: the parser really has ``--api-key`` on ``serve``."""
    parser = cli_main.build_parser()
    args = parser.parse_args(["serve", "--model", "x", "--api-key", ""])
    assert isinstance(args, argparse.Namespace) and args.api_key == ""


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/encode", 405), ("GET", "/nope", 404), ("GET", "/v1/nope", 404)],
)
def test_unknown_routes_and_methods_answer_the_family_shape(
    app: str, method: str, path: str, status: int
) -> None:
    answer = httpx.request(method, f"{app}{path}", headers=AUTH)
    assert answer.status_code == status
    body = answer.json()
    assert "detail" not in body, body
    assert "error" in body


@pytest.mark.parametrize("path", ["/v1/embeddings", "/embed"])
def test_a_form_content_type_says_to_send_json(app: str, path: str) -> None:
    answer = httpx.post(
        f"{app}{path}",
        content=b'{"inputs": "a"}',
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    _assert_family_shape(path, answer, "application/json")
