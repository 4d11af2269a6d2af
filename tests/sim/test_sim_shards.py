"""Registry shards and coordinator processes in the simulator: routing, scatter-gather and queueing."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab.errors import ConfigError
from mcastlab.filters import compile_filter
from mcastlab.identity import Identity
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends
from mcastlab.sim.cpu import CpuSpec, SimCpu

MU = 1000.0  # a shard serves 1000 operations/s (exponential, mean 1 ms)


def _registry(shards: int, *, cpu: Any = "off", rng: int = 3) -> tuple[SimPyRuntime, Any]:
    rt = SimPyRuntime(simpy.Environment())
    spec = {"registry": {"shards": shards, "timeout": None,
                         "service": {"default": {"kind": "exponential", "mean": 1 / MU},
                                     "query": {"kind": "constant", "value": 1e-4, "per_item": 1e-5}},
                         "network": {"default": 0.0}},
            "cpu": cpu}
    reg, _ = make_sim_backends(spec, rng=np.random.default_rng(rng))
    rt.run(reg.open(rt))
    return rt, reg


def _identity(name: str, t: float) -> Identity:
    return Identity(name, {"k": 1}, t, t + 1e6)


def test_an_identitys_operations_go_to_its_shard_only() -> None:
    rt, reg = _registry(4)
    rt.run(reg.upsert(_identity("dev-7", 0.0), now=0.0, max_identities=None))
    busy = [s.busy for s in reg.shards]
    assert sum(b > 0 for b in busy) == 1
    assert busy[zlib.crc32(b"dev-7") % 4] > 0  # the same hash RedisClusterRegistry routes by


def test_a_query_asks_every_shard_and_waits_for_the_last() -> None:
    rt, reg = _registry(4)

    async def body() -> float:
        for i in range(400):
            await reg.upsert(_identity(f"d{i}", rt.now()), now=rt.now(), max_identities=None)
        before = [s.busy for s in reg.shards]
        t0 = rt.now()
        found = await reg.query(compile_filter("k == 1"), now=rt.now())
        assert len(found) == 400
        assert all(s.busy - b == pytest.approx(1e-4 + 1e-5 * 100)
                   for s, b in zip(reg.shards, before, strict=True))
        return rt.now() - t0

    # each shard serves its 100 rows in parallel: 1.1 ms, not the 4.1 ms of one server serving 400
    assert rt.run(body()) == pytest.approx(1e-4 + 1e-5 * 100)


def _mean_wait(shards: int, load: float, n: int = 60_000) -> tuple[float, list[float]]:
    """Mean queueing wait of registers at ``load`` x one shard's capacity, spread over ``shards``."""
    rt, reg = _registry(shards)
    gaps = np.random.default_rng(11).exponential(1 / (load * MU), n).tolist()

    async def arrivals() -> None:
        for i, gap in enumerate(gaps):
            await rt.sleep(gap)
            rt.spawn(reg.upsert(_identity(f"dev-{i}", rt.now()), now=rt.now(), max_identities=None))
        await rt.sleep(5.0)

    rt.run(arrivals())
    span = sum(gaps)  # the arrivals' span (the run goes on 5 s longer, idle)
    return reg.stats["register"].mean_wait, [s.busy / span for s in reg.shards]


def test_three_shards_carry_a_load_one_could_not() -> None:
    rho = 0.9  # of ONE shard: 3 shards each see 0.3
    wait1, util1 = _mean_wait(1, rho)
    wait3, util3 = _mean_wait(3, rho)
    assert wait1 == pytest.approx(rho / (MU * (1 - rho)), rel=0.1)  # M/M/1
    per = rho / 3
    assert wait3 == pytest.approx(per / (MU * (1 - per)), rel=0.1)  # three independent M/M/1 queues
    assert all(u == pytest.approx(per, rel=0.05) for u in util3)  # CRC-32 spreads the names evenly
    assert util1[0] == pytest.approx(rho, rel=0.03)


def test_coordinator_processes_share_the_cpu_work() -> None:
    """Two processes take CPU-bound work that saturates one: the pool is M/M/2 (Erlang C)."""
    arrivals = np.cumsum(np.random.default_rng(6).exponential(1 / 800.0, 60_000)).tolist()
    work = np.random.default_rng(5).exponential(1e-3, 60_000).tolist()
    waits = {}
    for processes in (1, 2):
        cpu = SimCpu(CpuSpec.from_dict({"processes": processes}))
        assert cpu.server.servers == processes
        # queueing wait of each piece of work = done - arrival - its own service
        pairs = zip(arrivals, work, strict=True)
        waits[processes] = float(np.mean([cpu.charge(t, w) - t - w for t, w in pairs]))
    a = 0.8  # offered load in "processes": 800/s x 1 ms
    assert waits[1] == pytest.approx(a / (1e3 * (1 - a)), rel=0.1)
    # Erlang C for c = 2: P(wait) = a^2 / (a^2 + 2 (1 - a/2) (1 + a)); mean wait = P / (c mu - lambda)
    p_wait = a**2 / (a**2 + 2 * (1 - a / 2) * (1 + a))
    assert waits[2] == pytest.approx(p_wait / (2e3 - 800), rel=0.1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", 5000])
def test_shards_are_validated(bad: Any) -> None:
    with pytest.raises(ConfigError, match="registry.shards"):
        SimSpec.from_dict({"registry": {"shards": bad}})


@pytest.mark.parametrize("bad", [0, 2.0, None, "two"])
def test_processes_are_validated(bad: Any) -> None:
    with pytest.raises(ConfigError, match="cpu.processes"):
        SimSpec.from_dict({"cpu": {"processes": bad}})


def test_spec_round_trips_shards_and_processes() -> None:
    spec = SimSpec.from_dict({"registry": {"shards": 6}, "cpu": {"processes": 3}})
    again = SimSpec.from_dict({k: v for k, v in spec.to_dict().items() if k in ("registry", "cpu")})
    assert (again.registry.shards, again.cpu.processes) == (6, 3)
