"""Idle wake-ups in the simulator: the registry server's (registry.wake) and the load generator's timer
(cpu.timer), both gap-indexed tables measured by mcastlab calibrate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab.errors import ConfigError
from mcastlab.identity import Identity
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends
from mcastlab.sim.models import LEVELS, GapSampler, GapTable


def _table(per_gap: dict[float, float]) -> dict[str, Any]:
    """A table whose every quantile at gap g is per_gap[g] (a constant extra)."""
    gaps = sorted(per_gap)
    return {"gaps": gaps, "quantiles": [[per_gap[g]] * len(LEVELS) for g in gaps]}


def test_gap_table_fits_quantiles_and_round_trips() -> None:
    t = GapTable.fit({0.02: np.linspace(0, 1e-3, 101), 0.001: [-1.0, 2e-4]})
    assert t is not None and t.gaps == (0.001, 0.02)
    assert t.quantiles[0][0] == 0.0  # negative extras clip at 0
    assert t.quantiles[1][10] == pytest.approx(5e-4)
    assert GapTable.from_dict(t.to_dict(), "x") == t
    assert GapTable.fit({}) is None


@pytest.mark.parametrize("bad", [{"gaps": [0.02]}, {"gaps": [0.02, 0.01], "quantiles": [[0] * 21] * 2},
                                 {"gaps": [0.0], "quantiles": [[0] * 21]},
                                 {"gaps": [1], "quantiles": [[0] * 3]},
                                 {"gaps": ["a"], "quantiles": [[0] * 21]}, "fast"])
def test_gap_tables_are_validated(bad: Any) -> None:
    with pytest.raises(ConfigError, match="registry.wake"):
        SimSpec.from_dict({"registry": {"wake": bad}})


def test_the_sampler_uses_the_nearest_gap_and_shrinks_below_the_shortest() -> None:
    s = GapSampler(GapTable.from_dict(_table({0.001: 1e-4, 0.02: 5e-4}), "t"), np.random.default_rng(1))
    assert s(0.0) == 0.0 and s(-1.0) == 0.0  # busy: nothing
    assert s(0.015) == pytest.approx(5e-4)   # nearest in log scale: 0.02
    assert s(0.004) == pytest.approx(1e-4)   # nearest: 0.001
    assert s(0.0005) == pytest.approx(5e-5)  # half the shortest gap: half its extra


def _registry(wake: dict[float, float] | None) -> tuple[SimPyRuntime, Any]:
    rt = SimPyRuntime(simpy.Environment())
    spec: dict[str, Any] = {"registry": {"timeout": None, "service": {"default": 1e-4},
                                         "network": {"default": 0.0}}, "cpu": "off"}
    if wake is not None:
        spec["registry"]["wake"] = _table(wake)
    reg, _ = make_sim_backends(spec, rng=np.random.default_rng(3))
    rt.run(reg.open(rt))
    return rt, reg


def test_an_idle_registry_server_answers_late_a_busy_one_does_not() -> None:
    rt, reg = _registry({0.01: 3e-4, 0.05: 2e-3})

    async def timed_get() -> float:
        await reg.get("d", now=rt.now())
        return rt.now()

    async def body() -> tuple[float, float, float]:
        await rt.sleep(0.05)
        t0 = rt.now()
        await reg.upsert(Identity("d", {}, t0, None), now=t0, max_identities=None)
        after_idle = rt.now() - t0
        await rt.sleep(0.05)
        t1 = rt.now()
        first, second = await rt.gather(timed_get(), timed_get())  # the second queues behind the first
        return after_idle, first - t1, second - first

    after_idle, first, queued = rt.run(body())
    assert after_idle == pytest.approx(1e-4 + 2e-3)
    assert first == pytest.approx(1e-4 + 2e-3)
    assert queued == pytest.approx(1e-4)  # queued behind the first while the server woke: served right after


def test_without_a_table_nothing_changes() -> None:
    rt, reg = _registry(None)

    async def body() -> float:
        await rt.sleep(1.0)
        t0 = rt.now()
        await reg.get("x", now=t0)
        return rt.now() - t0

    assert rt.run(body()) == pytest.approx(1e-4)


def test_the_generators_timer_makes_simulated_lag_like_live() -> None:
    from mcastlab.workloads import run_scenario

    base = {"name": "t", "pattern": "multicast-registry", "duration": 20, "seed": 1,
            "slots": {"registry": "memory", "messaging": "memory"},
            "workload": {"kind": "loadtest", "rate": {"rate": 50, "process": "constant"}},
            "measure": {"agents": "none"}}
    plain = run_scenario({**base, "sim": {}}, progress=False)
    timer = _table({0.0005: 5e-4, 0.02: 9e-4})
    timed = run_scenario({**base, "sim": {"cpu": {"timer": timer}}}, progress=False)
    assert plain.ops["lag_s"].max() == 0.0
    assert timed.ops["lag_s"].median() == pytest.approx(9e-4, rel=0.05)  # 20 ms apart: the 0.02 row
