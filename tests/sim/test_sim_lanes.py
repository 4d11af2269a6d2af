"""The client's pipeline lanes in the simulator: batches form while every lane is busy, a lane holds until
its replies are read, and the live client's lane count reaches the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab import Config, Coordinator
from mcastlab.errors import ConfigError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends
from mcastlab.sim.lanes import Lanes


def test_commands_queued_while_every_lane_is_busy_go_together_in_the_next_batch() -> None:
    lanes = Lanes(1)
    assert lanes.dispatch(0.0) == 0.0  # an idle lane sends at once
    lanes.hold(1.0)  # ... and reads its reply until t = 1
    assert lanes.dispatch(0.2) == 1.0  # both wait for that lane and go out together at t = 1
    assert lanes.dispatch(0.5) == 1.0
    lanes.hold(1.5)
    lanes.hold(1.3)  # a reply read earlier does not shorten the batch
    assert lanes.dispatch(1.2) == 1.5  # the batch of t = 1 has left: the next waits for its last reply
    assert (lanes.batches, lanes.commands) == (3, 4)


def test_a_second_lane_takes_a_command_while_the_first_is_busy() -> None:
    lanes = Lanes(2)
    assert lanes.dispatch(0.0) == 0.0
    lanes.hold(1.0)
    assert lanes.dispatch(0.1) == 0.1
    lanes.hold(2.0)
    assert lanes.dispatch(0.3) == 1.0  # the first lane frees first
    assert lanes.free_at == 2.0


def _latency_of_a_register_sent_during_a_query(lanes: int | None) -> float:
    """A query with 5 ms of server time at t = 0, a register at t = 1 ms; 1 ms of network each, no CPU."""
    spec = {"registry": {"lanes": lanes, "timeout": None,
                         "service": {"default": 1e-4, "query": 5e-3}, "network": {"default": 1e-3}},
            "cpu": "off"}
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(0))
    rt = SimPyRuntime(simpy.Environment())
    c = Coordinator(Config(max_identities=None, auto_sweep=False), registry=reg, messaging=msg, runtime=rt)
    out: dict[str, float] = {}

    async def main() -> None:
        async with c:
            await c.register("a", {"g": 1})
            await rt.sleep(1.0)  # every lane idle again

            async def register_later() -> None:
                await rt.sleep(1e-3)
                t0 = rt.now()
                await c.register("b", {"g": 2})
                out["register"] = rt.now() - t0

            await rt.gather(c.enumerate({"g": 1}), register_later())

    rt.run(main())
    return out["register"]


def test_one_lane_makes_a_short_call_wait_for_the_reply_of_a_long_one() -> None:
    # no lanes model / two lanes: the register waits only for the query's server time (ends at 5 ms),
    # then 0.1 ms of its own and 1 ms back: done at 6.1 ms, 5.1 ms after it was called at 1 ms
    assert _latency_of_a_register_sent_during_a_query(None) == pytest.approx(5.1e-3, rel=1e-6)
    assert _latency_of_a_register_sent_during_a_query(2) == pytest.approx(5.1e-3, rel=1e-6)
    # one lane: it cannot be sent before the query's reply is back (6 ms): done at 7.1 ms
    assert _latency_of_a_register_sent_during_a_query(1) == pytest.approx(6.1e-3, rel=1e-6)


def test_a_lane_holds_until_the_coordinator_cpu_has_read_the_reply() -> None:
    """With the CPU modelled, the lane is free only once the event loop has parsed the reply (behind
    whatever else the CPU had queued), and that read is part of the caller's decode, not on top of it."""
    item, read, n = 4e-6, 1e-6, 500
    spec = {"registry": {"lanes": 1, "timeout": None, "service": {"default": 0.0},
                         "network": {"default": 0.0}},
            "cpu": {"call": {"default": 0.0, "query": 0.0}, "per_item": {"query": item}, "read_item": read,
                    "per_op": 0.0, "per_message": 0.0, "per_fanout": 0.0}}
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(0))
    rt = SimPyRuntime(simpy.Environment())
    c = Coordinator(Config(max_identities=None, auto_sweep=False), registry=reg, messaging=msg, runtime=rt)
    out: dict[str, float] = {}

    async def main() -> None:
        async with c:
            for i in range(n):
                await c.register(f"d{i}", {"g": 1})
            await rt.sleep(1.0)
            t0 = rt.now()
            assert len(await c.enumerate({"g": 1})) == n
            out["enumerate"] = rt.now() - t0
            out["lane_free"] = reg.lanes.free_at - t0

    rt.run(main())
    assert out["lane_free"] == pytest.approx(read * n, rel=1e-6)  # the lane read 500 items
    assert out["enumerate"] == pytest.approx(item * n, rel=1e-6)  # the whole decode, once


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True, 10_000])
def test_lanes_must_be_null_or_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigError, match="registry.lanes"):
        SimSpec.from_dict({"registry": {"lanes": bad}})


def test_the_shipped_calibration_models_the_live_clients_lanes_and_timeout() -> None:
    from mcastlab.backends._redis_pipe import DEFAULT_LANES, DEFAULT_TIMEOUT

    shipped = SimSpec.from_dict({"calibration": "default"}).registry
    assert (shipped.lanes, shipped.timeout) == (DEFAULT_LANES, DEFAULT_TIMEOUT) == (2, 5.0)
    assert SimSpec.from_dict({}).registry.lanes is None  # built-in defaults: one connection per call


def test_a_scenarios_redis_lanes_option_reaches_the_simulated_registry() -> None:
    from mcastlab.workloads import load_scenario
    from mcastlab.workloads.backends import sim_backends

    scn = load_scenario("scenarios/prism-loadtest.yaml",
                        overrides={"slots.registry": {"backend": "redis", "options": {"lanes": 5}}})
    b = sim_backends(scn, np.random.default_rng(0))
    assert b.registry.lanes is not None and len(b.registry.lanes._free) == 5
    default = sim_backends(load_scenario("scenarios/prism-loadtest.yaml"), np.random.default_rng(0))
    assert default.registry.lanes is not None and len(default.registry.lanes._free) == 2


def test_a_simulated_run_reports_how_busy_the_lanes_were() -> None:
    from mcastlab.workloads import run_scenario

    run = run_scenario("scenarios/prism-loadtest.yaml", mode="sim", progress=False,
                       overrides={"duration": 5, "drain": 1})
    res = run.manifest["resources"]
    assert res["servers"]["registry-lanes"] == 2
    assert 0.0 < res["busy"]["registry-lanes"] < 1.0
    # a lane is held for at least the server time of what it sent
    assert res["cpu_s"]["registry-lanes"] >= res["cpu_s"]["registry-server"]
