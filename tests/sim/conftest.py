"""Helpers for the sim tests: a coordinator on simulated backends, and its events as frames."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
import simpy

from mcastlab import Config, Coordinator
from mcastlab.results import ExpirationEvent, OpEvent
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimMessaging, SimRegistry, make_sim_backends


class Recorder:
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
        self.recorder = Recorder()
        self.coordinator.add_listener(self.recorder)

    def run(self, coro: Any) -> Any:
        return self.runtime.run(coro)


@pytest.fixture
def sim_setup() -> type[SimSetup]:
    return SimSetup
