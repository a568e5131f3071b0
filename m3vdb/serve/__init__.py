"""``m3vdb serve``: one BGE-M3 encoder for many processes, all three outputs over HTTP, on the
wire formats clients already speak (OpenAI embeddings, text-embeddings-inference) plus a
native route for dense + sparse + ColBERT from one forward pass.

Modules: ``config`` (settings and limits), ``batcher`` (dynamic batching across requests),
``wire`` and ``codec`` (request and response formats), ``metrics`` (Prometheus), ``app`` (the
routes). ``import m3vdb.serve`` loads no web framework; :func:`create_app` and
:func:`run_server` import FastAPI and uvicorn (``pip install 'm3vdb[serve]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from m3vdb.serve.config import ServeConfig

if TYPE_CHECKING:
    from m3vdb.serve.app import create_app, run_server


def __getattr__(name: str) -> Any:
    if name in ("create_app", "run_server"):
        from m3vdb.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'm3vdb.serve' has no attribute {name!r}")


__all__ = ["ServeConfig", "create_app", "run_server"]
