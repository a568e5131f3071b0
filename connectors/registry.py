"""Which connector module handles a target (a URL string or a native client object), and
the one table of what each database needs: its module, its client, the extra that installs
it, and its options type.

Modules are imported only when chosen, so ``import m3vdb.connectors`` imports no database
client. Each module exposes::

    def open_connector(target, *, collection: str, encoder: Encoder | None,
                       spec: IndexSpec | None, options: <its options> | None = None,
                       create: bool = True) -> Connector

:func:`load` checks that the chosen module's client is installed, so every target of a
database whose client is missing fails the same way: MissingDependencyError with the
``pip install 'm3vdb[...]'`` to run.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from m3vdb.schemas.errors import InputError, MissingDependencyError
from m3vdb.schemas.options import ElasticsearchOptions, MilvusOptions, QdrantOptions


@dataclass(frozen=True)
class Database:
    """One database m3vdb connects to.

    Attributes:
        name: its name in messages.
        module: the connector module.
        client: the client's import name (checked before the module is imported).
        package: the client's pip name.
        extra: the m3vdb extra that installs the client.
        options: the options type ``connect(options=...)`` accepts for it.
        schemes: URL schemes (the part before ``://`` or ``:``) that pick it.
        client_package: top-level package of a native client object that picks it.
    """

    name: str
    module: str
    client: str
    package: str
    extra: str
    options: type
    schemes: tuple[str, ...]
    client_package: str


DATABASES: tuple[Database, ...] = (
    Database(
        "Milvus",
        "m3vdb.connectors.milvus",
        "pymilvus",
        "pymilvus",
        "milvus",
        MilvusOptions,
        ("milvus", "milvus+http", "milvus+https", "milvus-lite"),
        "pymilvus",
    ),
    Database(
        "Qdrant",
        "m3vdb.connectors.qdrant",
        "qdrant_client",
        "qdrant-client",
        "qdrant",
        QdrantOptions,
        ("qdrant", "qdrant+http", "qdrant+https", "qdrant+memory", "qdrant+local"),
        "qdrant_client",
    ),
    Database(
        "Elasticsearch",
        "m3vdb.connectors.elasticsearch",
        "elasticsearch",
        "elasticsearch",
        "elasticsearch",
        ElasticsearchOptions,
        ("elasticsearch", "elasticsearch+http", "elasticsearch+https"),
        "elasticsearch",
    ),
)

URL_FORMS = """\
  milvus-lite:PATH.db              Milvus Lite (embedded), a local file (a bare PATH.db works too)
  milvus://HOST:19530              Milvus server (milvus+https:// for TLS)
  qdrant+memory://                 Qdrant local mode, in memory
  qdrant+local:PATH                Qdrant local mode, persisted in a folder
  qdrant://HOST:6333               Qdrant server (qdrant+https:// for TLS)
  elasticsearch://HOST:9200        Elasticsearch (elasticsearch+https:// for TLS)"""


def lite_path(target: object) -> str | None:
    """The file of a Milvus Lite target (``milvus-lite:PATH`` or a bare ``PATH.db``), else None.

    The one parser of Lite targets: the registry, the Milvus connector and the CLI use it.
    """
    if not isinstance(target, str):
        return None
    if target.startswith("milvus-lite:"):
        path = target[len("milvus-lite:") :]
        return path[2:] if path.startswith("//") else path
    if target.endswith(".db") and ":" not in target.split("/")[0]:
        return target
    return None


def database_for(target: Any) -> Database:
    """The database ``target`` names; raises InputError listing the accepted forms."""
    if isinstance(target, str):
        if lite_path(target) is not None:
            return DATABASES[0]
        scheme = target.split("://", 1)[0] if "://" in target else target.split(":", 1)[0]
        for db in DATABASES:
            if scheme.lower() in db.schemes:
                return db
        raise InputError(f"unknown database target {target!r}; use one of:\n{URL_FORMS}")
    package = type(target).__module__.split(".", 1)[0]
    for db in DATABASES:
        if package == db.client_package:
            return db
    raise InputError(
        f"cannot use a {type(target).__module__}.{type(target).__name__} as a database target; "
        f"pass a pymilvus.MilvusClient, a qdrant_client.QdrantClient, an "
        f"elasticsearch.Elasticsearch, or a URL:\n{URL_FORMS}"
    )


def module_for(target: Any) -> str:
    """The connector module name for ``target``; raises InputError listing the accepted forms."""
    return database_for(target).module


def check_options(target: Any, options: object) -> None:
    """TypeError when ``options`` are meant for another database than ``target``'s."""
    if options is None:
        return
    db = database_for(target)
    if not isinstance(options, db.options):
        meant = getattr(options, "database", None)
        found = f"{type(options).__name__} (for {meant})" if meant else type(options).__name__
        raise TypeError(
            f"options={found} cannot configure the {db.name} target {target!r}; pass "
            f"{db.options.__name__}(...) or no options"
        )


def load(target: Any) -> ModuleType:
    """Imports and returns the connector module for ``target``.

    Raises:
        InputError: the target is not understood.
        MissingDependencyError: the database's client is not installed (the message gives
            the ``pip install`` to run).
    """
    db = database_for(target)
    purpose = f"The {db.name} connector"
    if _missing(db.client):
        raise MissingDependencyError(db.package, db.extra, purpose)
    try:
        return importlib.import_module(db.module)
    except ModuleNotFoundError as exc:
        # A client imported by the module itself (at import time) counts the same.
        if exc.name is not None and exc.name.split(".")[0] == db.client:
            raise MissingDependencyError(db.package, db.extra, purpose) from exc
        raise


def _missing(import_name: str) -> bool:
    """Whether a top-level package cannot be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(import_name) is None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return True
