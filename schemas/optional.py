"""The one optional-import helper: a missing optional package becomes a MissingDependencyError
that names the exact ``pip install 'm3vdb[extra]'`` to run."""

from __future__ import annotations

import importlib
from types import ModuleType

from m3vdb.errors import MissingDependencyError


def import_optional(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Imports ``module`` or raises MissingDependencyError.

    Args:
        module: the import name (``"pymilvus"``, ``"qdrant_client.models"``).
        package: its pip name, for the message (``"qdrant-client"``).
        extra: the m3vdb extra that installs it (``"qdrant"``).
        purpose: what needs it, for the message (``"The Qdrant connector"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != root:
            raise  # the package is there but one of ITS dependencies is broken: show that
        raise MissingDependencyError(package, extra, purpose) from exc
