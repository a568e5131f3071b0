"""One local Ray (2 CPUs, as CI has) for every test of this folder, started and stopped here.

Troubleshooting: Ray's start takes ~10-30 s on a 2-core machine; a test that hangs is most
often an actor pool waiting for CPUs another pool holds (each actor takes ``num_cpus=1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    if ray.is_initialized():  # started by another test of this session: left to it
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
