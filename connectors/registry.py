"""Which connector module handles a target (a URL string or a native client object).

Modules are imported only when chosen, so ``import connectors`` imports no database client.
Each module exposes::

    def open_connector(target, *, collection: str, encoder: M3Encoder | None,
                       spec: IndexSpec | None, create: bool = True) -> Connector

:func:`load` checks that the chosen module's client is installed, so every target of a
database whose client is missing fails the same way: MissingDependencyError with the
``pip install 'm3vdb[...]'`` to run.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from m3vdb.schemas.errors import InputError, MissingDependencyError

# URL scheme (the part before "://" or ":") -> connector module.
_SCHEMES: dict[str, str] = {
    "milvus": "m3vdb.connectors.milvus",
    "milvus+http": "m3vdb.connectors.milvus",
    "milvus+https": "m3vdb.connectors.milvus",
    "milvus-lite": "m3vdb.connectors.milvus",
    "qdrant": "m3vdb.connectors.qdrant",
    "qdrant+http": "m3vdb.connectors.qdrant",
    "qdrant+https": "m3vdb.connectors.qdrant",
    "qdrant+memory": "m3vdb.connectors.qdrant",
    "qdrant+local": "m3vdb.connectors.qdrant",
    "elasticsearch": "m3vdb.connectors.elasticsearch",
    "elasticsearch+http": "m3vdb.connectors.elasticsearch",
    "elasticsearch+https": "m3vdb.connectors.elasticsearch",
}
# Top-level package of a native client's class -> connector module.
_CLIENT_PACKAGES: dict[str, str] = {
    "pymilvus": "m3vdb.connectors.milvus",
    "qdrant_client": "m3vdb.connectors.qdrant",
    "elasticsearch": "m3vdb.connectors.elasticsearch",
}
# Connector module -> (client's import name, its pip name, the m3vdb extra, what needs it).
_CLIENTS: dict[str, tuple[str, str, str, str]] = {
    "m3vdb.connectors.milvus": ("pymilvus", "pymilvus", "milvus", "The Milvus connector"),
    "m3vdb.connectors.qdrant": ("qdrant_client", "qdrant-client", "qdrant", "The Qdrant connector"),
    "m3vdb.connectors.elasticsearch": (
        "elasticsearch",
        "elasticsearch",
        "elasticsearch",
        "The Elasticsearch connector",
    ),
}

URL_FORMS = """\
  milvus-lite:PATH.db              Milvus Lite (embedded), a local file (a bare PATH.db works too)
  milvus://HOST:19530              Milvus server (milvus+https:// for TLS)
  qdrant+memory://                 Qdrant local mode, in memory
  qdrant+local:PATH                Qdrant local mode, persisted in a folder
  qdrant://HOST:6333               Qdrant server (qdrant+https:// for TLS)
  elasticsearch://HOST:9200        Elasticsearch (elasticsearch+https:// for TLS)"""


def module_for(target: Any) -> str:
    """The connector module name for ``target``; raises InputError listing the accepted forms."""
    if isinstance(target, str):
        if target.endswith(".db") and ":" not in target.split("/")[0]:
            return "m3vdb.connectors.milvus"
        scheme = target.split("://", 1)[0] if "://" in target else target.split(":", 1)[0]
        module = _SCHEMES.get(scheme.lower())
        if module is not None:
            return module
        raise InputError(f"unknown database target {target!r}; use one of:\n{URL_FORMS}")
    package = type(target).__module__.split(".", 1)[0]
    module = _CLIENT_PACKAGES.get(package)
    if module is None:
        raise InputError(
            f"cannot use a {type(target).__module__}.{type(target).__name__} as a database target; "
            f"pass a pymilvus.MilvusClient, a qdrant_client.QdrantClient, an "
            f"elasticsearch.Elasticsearch, or a URL:\n{URL_FORMS}"
        )
    return module


def load(target: Any) -> Any:
    """Imports and returns the connector module for ``target``.

    Raises:
        InputError: the target is not understood.
        MissingDependencyError: the database's client is not installed (the message gives
            the ``pip install`` to run).
    """
    name = module_for(target)
    import_name, package, extra, purpose = _CLIENTS[name]
    if _missing(import_name):
        raise MissingDependencyError(package, extra, purpose)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # A client imported by the module itself (at import time) counts the same.
        if exc.name is not None and exc.name.split(".")[0] == import_name:
            raise MissingDependencyError(package, extra, purpose) from exc
        raise


def _missing(import_name: str) -> bool:
    """Whether a top-level package cannot be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(import_name) is None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return True
