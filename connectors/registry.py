"""Which connector module handles a target (a URL string or a native client object).

Modules are imported only when chosen, so ``import connectors`` imports no database client.
Each module exposes::

    def open_connector(target, *, collection: str, encoder: M3Encoder | None,
                       spec: IndexSpec | None) -> Connector
"""

from __future__ import annotations

import importlib
from typing import Any

from encoder.errors import InputError

# URL scheme (the part before "://" or ":") -> connector module.
_SCHEMES: dict[str, str] = {
    "milvus": "connectors.milvus",
    "milvus+http": "connectors.milvus",
    "milvus+https": "connectors.milvus",
    "milvus-lite": "connectors.milvus",
    "qdrant": "connectors.qdrant",
    "qdrant+http": "connectors.qdrant",
    "qdrant+https": "connectors.qdrant",
    "qdrant+memory": "connectors.qdrant",
    "qdrant+local": "connectors.qdrant",
    "elasticsearch": "connectors.elasticsearch",
    "elasticsearch+http": "connectors.elasticsearch",
    "elasticsearch+https": "connectors.elasticsearch",
}
# Top-level package of a native client's class -> connector module.
_CLIENT_PACKAGES: dict[str, str] = {
    "pymilvus": "connectors.milvus",
    "qdrant_client": "connectors.qdrant",
    "elasticsearch": "connectors.elasticsearch",
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
            return "connectors.milvus"
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
    """Imports and returns the connector module for ``target``."""
    return importlib.import_module(module_for(target))
