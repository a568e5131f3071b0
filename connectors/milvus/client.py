"""The pymilvus side of the Milvus connector: importing pymilvus, creating a ``MilvusClient`` from
a URL, detecting what the server can do, and translating pymilvus / gRPC errors into m3vdb's.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from m3vdb.connectors.registry import lite_path
from m3vdb.errors import BackendError, InputError, M3VDBError, MissingDependencyError
from m3vdb.schemas.milvus import MilvusCapabilities
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.options import MilvusOptions

DEFAULT_PORT = 19530


def import_pymilvus() -> Any:
    """``pymilvus``, or MissingDependencyError with the pip command."""
    return import_optional(
        "pymilvus", package="pymilvus", extra="milvus", purpose="The Milvus connector"
    )


# --------------------------------------------------------------------------- errors


def is_transient(exc: Exception) -> bool:
    """Whether a pymilvus / gRPC error may pass on retry: the server unavailable or not ready,
    a deadline exceeded, a rate limit. Invalid parameters, missing collections and schema
    errors are not."""
    import grpc

    transient_grpc = {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
    if isinstance(exc, grpc.RpcError):
        return exc.code() in transient_grpc  # type: ignore[attr-defined]
    from pymilvus.exceptions import MilvusException, MilvusUnavailableException

    if isinstance(exc, MilvusUnavailableException):
        return True
    if isinstance(exc, MilvusException):
        code = exc.code
        if code in transient_grpc:
            return True
        # Milvus's own codes: 2 service unavailable, 3 memory limit, 8 rate limit.
        if code in (2, 3, 8):
            return True
        message = str(exc.message).lower()
        return any(
            hint in message
            for hint in ("rate limit", "not ready", "unavailable", "timeout", "retry run out")
        )
    return isinstance(exc, (TimeoutError, ConnectionError))


def translate_error(exc: Exception, what: str) -> M3VDBError:
    """A pymilvus / gRPC exception as an m3vdb error (the same types for Lite and servers)."""
    if isinstance(exc, M3VDBError):
        return exc
    from pymilvus.exceptions import MilvusException, ParamError

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, ParamError) or (isinstance(exc, MilvusException) and exc.code == 1100):
        return InputError(f"Milvus rejected the {what} as invalid: {message}")
    if isinstance(exc, MilvusException) and exc.code == 100:
        return BackendError(
            f"{what}: the collection does not exist (dropped elsewhere?): {message}. Open the "
            "connector again to recreate it"
        )
    return BackendError(f"{what} failed: {message}", retriable=is_transient(exc))


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved_level = logging.NOTSET


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Silences pymilvus's own logging while m3vdb calls it: pymilvus logs every failed RPC at
    ERROR level with a full traceback, although each failure also reaches us as an exception
    that we translate (or, where we swallow it, log at debug level). Re-entrant and safe across
    threads: the level is set by the first caller in and restored by the last one out."""
    global _quiet_depth, _quiet_saved_level
    logger = logging.getLogger("pymilvus")
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved_level = logger.level
            logger.setLevel(logging.CRITICAL)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                logger.setLevel(_quiet_saved_level)


# --------------------------------------------------------------------------- opening


class _LiteLog(logging.Handler):
    """Collects what Milvus Lite logs while a file is opened: it gives the reason an open
    failed only there (to the root logger), pymilvus raising "Open local milvus failed"."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def lite_held_elsewhere(path: str) -> bool:
    """Whether another process holds the lock Milvus Lite keeps beside ``path`` (``.NAME.lock``,
    an exclusive ``lockf`` lock held while a Lite server runs on the file).

    Asked BEFORE opening: a failed open in milvus-lite 2.5 deletes the lock and socket files
    of the process that holds the file (its ``Server.__del__``). POSIX record locks belong to
    a process and closing any descriptor of the file releases them, so the lock is probed only
    when milvus-lite's registry shows that this process does not run a server on the file
    (and not at all if that registry cannot be read)."""
    try:
        import fcntl

        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # Windows, or no milvus-lite: opening fails with its own message
        return False
    resolved = Path(path).absolute().resolve()
    servers = getattr(server_manager_instance, "_servers", None)
    if not isinstance(servers, dict) or str(resolved) in servers:
        return False
    lock = resolved.parent / f".{resolved.name}.lock"
    if not lock.exists():
        return False
    with open(lock, "a") as fd:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN)
    return False


def _in_use(path: str) -> BackendError:
    # Not the caller's value (the path is fine) and no retry of ours can help; the same call
    # succeeds once the other process lets go: a BackendError, not retriable.
    return BackendError(
        f"the Milvus Lite file {path!r} is in use by another process (Milvus Lite lets one "
        "process open a file at a time); close that process (or its MilvusClient) and try "
        "again, use another .db file, or use a Milvus server (milvus://HOST:19530) for "
        "several processes"
    )


def _open_lite(pymilvus: Any, path: str) -> Any:
    with warnings.catch_warnings():
        # milvus-lite 2.5 imports pkg_resources, which warns on every import
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        if lite_held_elsewhere(path):
            raise _in_use(path)
    root, lite_log = logging.getLogger(), _LiteLog()
    root.addHandler(lite_log)  # also keeps Python's last-resort handler from printing it
    try:
        with warnings.catch_warnings():
            # milvus-lite 2.5 imports pkg_resources, which warns on every import
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            return pymilvus.MilvusClient(path)
    except Exception as exc:
        if any("opened by another program" in m for m in lite_log.messages):
            raise _in_use(path) from exc
        raise translate_error(exc, f"opening Milvus Lite at {path!r}") from exc
    finally:
        root.removeHandler(lite_log)


def client_from_url(url: str, options: MilvusOptions) -> tuple[Any, bool]:
    """(MilvusClient, is_lite) for a URL; the caller owns (closes) the client."""
    pymilvus = import_pymilvus()
    path = lite_path(url)
    if path is not None:
        if not path.endswith(".db"):
            raise InputError(f"Milvus Lite needs a file path ending in .db, got {path!r}")
        if importlib.util.find_spec("milvus_lite") is None:
            raise MissingDependencyError("milvus-lite", "milvus", "Milvus Lite (a local .db file)")
        if options.client_settings():
            raise InputError(
                f"MilvusOptions {options} configure a Milvus server client; Milvus Lite "
                f"({path}) takes none: leave options out"
            )
        return _open_lite(pymilvus, path), True
    parts = urlsplit(url)
    scheme = {"milvus": "http", "milvus+http": "http", "milvus+https": "https"}.get(
        parts.scheme.lower()
    )
    if scheme is None or not parts.hostname:
        raise InputError(
            f"not a Milvus URL: {url!r}; use milvus-lite:PATH.db, PATH.db, "
            "milvus://HOST:19530 or milvus+https://HOST:PORT"
        )
    uri = f"{scheme}://{parts.hostname}:{parts.port or DEFAULT_PORT}"
    token = options.token or ""
    if parts.username and not token:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    settings: dict[str, Any] = {}
    if options.db_name is not None:
        settings["db_name"] = options.db_name
    if options.timeout is not None:
        settings["timeout"] = options.timeout
    try:
        return pymilvus.MilvusClient(uri=uri, token=token, **settings), False
    except Exception as exc:
        raise translate_error(exc, f"connecting to Milvus at {uri}") from exc


def detect_capabilities(client: Any, *, lite: bool | None = None) -> MilvusCapabilities:
    """Asks the server its version once. Milvus Lite does not implement GetVersion (gRPC
    UNIMPLEMENTED), which is how a client object handed to us is recognised as Lite."""
    if lite:
        return MilvusCapabilities.for_lite()
    # Lite's expected UNIMPLEMENTED would be logged by pymilvus with a traceback: noise.
    with quiet_pymilvus():
        try:
            version = client.get_server_version()
        except Exception as exc:
            code = getattr(exc, "code", None)
            status = code() if callable(code) else code
            if "UNIMPLEMENTED" in str(status) or "UNIMPLEMENTED" in str(exc):
                return MilvusCapabilities.for_lite()
            raise translate_error(exc, "asking Milvus for its version") from exc
    return MilvusCapabilities.for_server(str(version))
