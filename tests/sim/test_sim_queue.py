"""Queueing sanity: a single-server registry under Poisson load 0.7 matches M/M/1."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import FcfsServer, make_sim_backends

MU = 1000.0  # services per second (mean service 1 ms)
RHO = 0.7
N = 200_000


def test_mm1_mean_wait_within_5_percent() -> None:
    rt = SimPyRuntime(simpy.Environment())
    spec = {
        "registry": {
            "service": {"default": {"kind": "exponential", "mean": 1 / MU}},
            "network": {"default": 0.0},
            "timeout": None,
        }
    }
    reg, _ = make_sim_backends(spec, rng=np.random.default_rng(2024))
    rt.run(reg.open(rt))
    gaps = np.random.default_rng(7).exponential(1 / (RHO * MU), N).tolist()

    async def arrivals() -> None:
        for gap in gaps:
            await rt.sleep(gap)
            rt.spawn(reg.get("x", now=rt.now()))
        await rt.sleep(1.0)

    rt.run(arrivals())
    stats = reg.stats["get"]
    assert stats.count == N
    expected = RHO / (MU * (1 - RHO))
    assert stats.mean_wait == pytest.approx(expected, rel=0.05)
    assert reg.server.busy / rt.now() == pytest.approx(RHO, rel=0.02)


def test_fcfs_server_is_lindley() -> None:
    s = FcfsServer(1)
    assert s.admit(0.0, 1.0) == 0.0
    assert s.admit(0.5, 1.0) == 1.0
    assert s.admit(3.0, 1.0) == 3.0
    two = FcfsServer(2)
    assert [two.admit(0.0, 1.0) for _ in range(4)] == [0.0, 0.0, 1.0, 1.0]
