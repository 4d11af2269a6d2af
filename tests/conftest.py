"""Shared test settings: hypothesis profiles, live tests that may not skip in CI, ``eventually`` (tests
that wait for background work poll until a deadline instead of sleeping a fixed time) and ``sim_setup``
(a coordinator on simulated backends, its events as frames)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
import simpy
from hypothesis import HealthCheck, settings

from mcastlab import Config, Coordinator
from mcastlab.results import ExpirationEvent, OpEvent
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimMessaging, SimRegistry, make_sim_backends

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


Condition = Callable[[], bool | Awaitable[bool]]


async def _eventually(condition: Condition, timeout: float = 10.0, poll: float = 0.01,
                      what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        await asyncio.sleep(poll)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(lambda: cond, timeout=10)``: poll a (sync or async) condition until it holds;
    fails the test at the deadline. For background work (sweeps, reconnects) whose timing varies."""
    return _eventually


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    """In CI a live test must run: a skip there (a missing server binary, say) would hide a failure."""
    report = yield
    if (os.environ.get("CI") and isinstance(report, pytest.TestReport) and report.skipped
            and item.get_closest_marker("live") is not None):
        report.outcome = "failed"
        why = "live test skipped in CI; scripts/test.sh must install its servers"
        report.longrepr = f"{why}: {report.longrepr}"
    return report



class SimEvents:
    """Collects coordinator events into ops / expirations frames."""

    def __init__(self) -> None:
        self.ops: list[OpEvent] = []
        self.expirations: list[ExpirationEvent] = []

    def __call__(self, event: Any) -> None:
        (self.ops if isinstance(event, OpEvent) else self.expirations).append(event)

    def ops_frame(self) -> pd.DataFrame:
        cols = ["op", "t_start", "latency_s", "ok", "error", "matched", "delivered", "failed", "identity"]
        return pd.DataFrame([{c: getattr(e, c) for c in cols} for e in self.ops], columns=cols)

    def expirations_frame(self) -> pd.DataFrame:
        rows = [
            {"identity": e.identity, "deadline": e.deadline, "t_detected": e.t_detected, "lag_s": e.lag_s}
            for e in self.expirations
        ]
        return pd.DataFrame(rows, columns=["identity", "deadline", "t_detected", "lag_s"])


class SimSetup:
    """A SimPy runtime, simulated backends and a coordinator with a recorder attached."""

    def __init__(self, spec: Mapping[str, Any] | None = None, *, seed: int = 1, **config: Any) -> None:
        self.runtime = SimPyRuntime(simpy.Environment())
        self.registry: SimRegistry
        self.messaging: SimMessaging
        self.registry, self.messaging = make_sim_backends(spec, rng=np.random.default_rng(seed))
        # bound to this runtime now, so tests may drive the backends without a coordinator
        self.runtime.run(self.registry.open(self.runtime))
        self.runtime.run(self.messaging.open(self.runtime))
        config.setdefault("max_identities", None)
        self.coordinator = Coordinator(
            Config(**config),
            registry=self.registry,
            messaging=self.messaging,
            runtime=self.runtime,
            name="sim",
        )
        self.recorder = SimEvents()
        self.coordinator.add_listener(self.recorder)

    def run(self, coro: Any) -> Any:
        return self.runtime.run(coro)


@pytest.fixture
def sim_setup() -> type[SimSetup]:
    return SimSetup


@pytest.fixture
def sim_events() -> type[SimEvents]:
    """The event collector class (coordinator listener -> ops / expirations frames)."""
    return SimEvents

@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Generator[object, None, None]:
    """A Redis 7 Cluster (3 masters + 3 replicas) shared by the session's non-destructive cluster tests
    (they isolate themselves by key prefix; tests that kill nodes start their own cluster)."""
    from mcastlab import servers
    from mcastlab.errors import ServerError

    try:
        cluster = servers.start_redis_cluster(3, 1)
    except ServerError as exc:
        if "not found" in str(exc):
            pytest.skip(f"redis-server not available: {exc}")
        raise
    yield cluster
    cluster.stop()
