"""Sweep tests: a tiny load-test scenario in sim (runs take 0.1-1 s) and one in-process Dask cluster.

The in-process cluster (workers are threads of the test process) is shared by the module's tests and
reached either as a ``distributed.Client`` or, by the command line tests, through its scheduler address
(``--scheduler``). One test (test_sweep_cli.py) starts real worker processes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "pattern": "multicast-registry",
    "name": "tiny-load",
    "mode": "sim",
    "seed": 3,
    "duration": 8,
    "warmup": 1,
    "drain": 2,
    "slots": {"registry": "redis", "messaging": "nats"},
    "config": {"default_ttl": 300, "delivery_mode": "publish"},
    "workload": {
        "kind": "loadtest",
        "rate": {"rate": 40, "process": "poisson"},
        "mix": {"register": 0.5, "enumerate": 0.3, "multicast": 0.2},
        "filter": 'status == "online"',
        "ttl": 300,
        "metadata": {"status": "online"},
        "payload_bytes": 64,
    },
    "sim": {},  # the built-in model, pinned here: a recalibrated default.json must not move the knee
    "measure": {"agents": "none"},
    "spec_targets": False,
    # enumerate returns every registered identity, so its latency grows with the rate: monotone
    "targets": [{"metric": "latency", "op": "enumerate", "stat": "p50", "below": 0.002,
                 "name": "enumerate p50 < 2 ms"}],
}


@pytest.fixture
def tiny() -> dict[str, Any]:
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def tiny_knee(inproc: Any) -> Any:
    """The knee of the tiny scenario's request rate in [20, 160] (tolerance 0.1), shared by the Python and
    command line tests (which must find the same one)."""
    import mcastlab

    return mcastlab.knee(TINY, "workload.rate.rate", 20, 160, tolerance=0.1, client=inproc, progress=False)


@pytest.fixture(scope="session")
def inproc() -> Iterator[Any]:
    """An in-process LocalCluster (2 worker threads) and a client on it, from mcastlab's own helper."""
    from mcastlab.dask_cluster import cluster

    with cluster(workers=2, processes=False) as client:
        yield client
