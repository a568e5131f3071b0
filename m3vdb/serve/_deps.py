"""The one place that imports the web stack, so that a missing install says what to run."""

from __future__ import annotations

from m3vdb.errors import MissingDependencyError

try:
    import uvicorn
    from fastapi import FastAPI, Request, Response
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    name = getattr(exc, "name", None) or "fastapi"
    raise MissingDependencyError(name, "serve", "m3vdb serve") from exc

__all__ = [
    "FastAPI",
    "Request",
    "RequestValidationError",
    "Response",
    "StarletteHTTPException",
    "uvicorn",
]
