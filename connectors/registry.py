"""Which database handles a target (a URL string or a native client object), and the one
table of what each database is: its ``Engine`` subclass (``m3vdb.connectors.engine``), its
client, the extra that installs it, its options type and its URL schemes. Adding a database
is one ``Engine`` subclass plus one :class:`Database` row here.

Engine modules are imported only when chosen, so ``import m3vdb.connectors`` imports no
database client. :func:`load` checks that the chosen database's client is installed, so every
target of a database whose client is missing fails the same way: MissingDependencyError with
the ``pip install 'm3vdb[...]'`` to run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from m3vdb.errors import InputError, MissingDependencyError
from m3vdb.schemas.options import (
    ElasticsearchOptions,
    MilvusOptions,
    QdrantEdgeOptions,
    QdrantOptions,
)

if TYPE_CHECKING:
    from m3vdb.connectors.engine import Engine


@dataclass(frozen=True)
class Database:
    """One database m3vdb connects to.

    Attributes:
        name: its name in messages.
        engine: its ``Engine`` subclass, as ``"module:Class"`` (imported when chosen).
        client: the client's import name (checked before the module is imported).
        package: the client's pip name.
        extra: the m3vdb extra that installs the client.
        options: the options type ``connect(options=...)`` accepts for it.
        schemes: URL schemes (the part before ``://`` or ``:``) that pick it.
        client_package: top-level package of a native client object that picks it.
        client_types: ``module.Class`` of native objects that pick it although their
            ``__module__`` does not name the package (compiled classes report ``builtins``).
    """

    name: str
    engine: str
    client: str
    package: str
    extra: str
    options: type
    schemes: tuple[str, ...]
    client_package: str
    client_types: tuple[str, ...] = ()


DATABASES: tuple[Database, ...] = (
    Database(
        "Milvus",
        "m3vdb.connectors.milvus.engine:MilvusEngine",
        "pymilvus",
        "pymilvus",
        "milvus",
        MilvusOptions,
        ("milvus", "milvus+http", "milvus+https", "milvus-lite"),
        "pymilvus",
    ),
    Database(
        "Qdrant",
        "m3vdb.connectors.qdrant.client:QdrantEngine",
        "qdrant_client",
        "qdrant-client",
        "qdrant",
        QdrantOptions,
        ("qdrant", "qdrant+http", "qdrant+https", "qdrant+memory", "qdrant+local"),
        "qdrant_client",
    ),
    Database(
        "Elasticsearch",
        "m3vdb.connectors.elasticsearch.engine:ElasticsearchEngine",
        "elasticsearch",
        "elasticsearch",
        "elasticsearch",
        ElasticsearchOptions,
        ("elasticsearch", "elasticsearch+http", "elasticsearch+https"),
        "elasticsearch",
    ),
    Database(
        "Qdrant edge",
        "m3vdb.connectors.qdrant.edge:QdrantEdgeEngine",
        "qdrant_edge",
        "qdrant-edge-py",
        "qdrant-edge",
        QdrantEdgeOptions,
        ("qdrant+edge",),
        "qdrant_edge",
        ("qdrant_edge.EdgeShard",),
    ),
)

URL_FORMS = """\
  milvus-lite:PATH.db              Milvus Lite (embedded), a local file (a bare PATH.db works too)
  milvus://HOST:19530              Milvus server (milvus+https:// for TLS)
  qdrant+memory://                 Qdrant local mode, in memory
  qdrant+local:PATH                Qdrant local mode, persisted in a folder
  qdrant+edge:PATH                 Qdrant edge (Qdrant's Rust engine in-process), a folder
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


def local_paths(target: object) -> list[str]:
    """The files and folders an embedded target creates on first use (a Milvus Lite file and
    its lock file; a Qdrant local or edge folder); [] for a server or a client object. What
    ``m3vdb.index`` removes again when a run that created them fails before its first write.
    """
    lite = lite_path(target)
    if lite is not None:
        folder, name = os.path.split(lite)
        return [lite, os.path.join(folder, f".{name}.lock")]
    if not isinstance(target, str):
        return []
    scheme, _, rest = target.partition(":")
    rest = rest[2:] if rest.startswith("//") else rest
    if scheme.lower() in ("qdrant+local", "qdrant+edge") and rest:
        return [rest]
    return []


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
        if package == db.client_package or _is_client_type(target, db.client_types):
            return db
    raise InputError(
        f"cannot use a {type(target).__module__}.{type(target).__name__} as a database target; "
        f"pass a pymilvus.MilvusClient, a qdrant_client.QdrantClient, a qdrant_edge.EdgeShard, "
        f"an elasticsearch.Elasticsearch, or a URL:\n{URL_FORMS}"
    )


def _is_client_type(target: object, names: tuple[str, ...]) -> bool:
    """Whether ``target`` is an instance of one of ``names`` (``module.Class``); a module not
    imported yet cannot have made ``target``, so nothing is imported here."""
    for name in names:
        module, _, cls = name.rpartition(".")
        loaded = sys.modules.get(module)
        kind = getattr(loaded, cls, None) if loaded is not None else None
        if isinstance(kind, type) and isinstance(target, kind):
            return True
    return False


def module_for(target: Any) -> str:
    """The engine module name for ``target``; raises InputError listing the accepted forms."""
    return database_for(target).engine.split(":", 1)[0]


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


def load(target: Any) -> type[Engine]:
    """Imports and returns the ``Engine`` subclass for ``target``.

    Raises:
        InputError: the target is not understood.
        MissingDependencyError: the database's client is not installed (the message gives
            the ``pip install`` to run).
    """
    return engine_class(database_for(target))


def engine_class(db: Database) -> type[Engine]:
    """Imports and returns ``db``'s ``Engine`` subclass (MissingDependencyError as :func:`load`)."""
    purpose = f"The {db.name} connector"
    if _missing(db.client):
        raise MissingDependencyError(db.package, db.extra, purpose)
    module_name, _, class_name = db.engine.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # A client imported by the module itself (at import time) counts the same.
        if exc.name is not None and exc.name.split(".")[0] == db.client:
            raise MissingDependencyError(db.package, db.extra, purpose) from exc
        raise
    engine: type[Engine] = getattr(module, class_name)
    return engine


def engines() -> list[type[Engine]]:
    """The Engine class of every database whose client is installed (for conformance tests)."""
    return [engine_class(db) for db in DATABASES if not _missing(db.client)]


def _missing(import_name: str) -> bool:
    """Whether a top-level package cannot be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(import_name) is None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return True
