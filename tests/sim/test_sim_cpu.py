"""The coordinator process's CPU as a queue: M/M/1 on the CPU alone, a long operation delaying a short
one, and the CPU costs recovered by the calibration fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab import Config, Coordinator
from mcastlab.errors import ConfigError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import CpuSpec, SimCpu, make_sim_backends
from mcastlab.sim.calibration import fit_cpu

NO_SERVER = {"registry": {"service": {"default": 0.0}, "network": {"default": 0.0}, "timeout": None}}


def test_mm1_wait_when_the_cpu_is_the_only_queue() -> None:
    """Poisson calls with exponential CPU work: mean wait in queue = rho / (mu (1 - rho)) within 5 %."""
    mu, rho, n = 1000.0, 0.7, 100_000
    rng = np.random.default_rng(3)
    arrivals = np.cumsum(rng.exponential(1 / (rho * mu), n))
    work = rng.exponential(1 / mu, n)
    cpu = SimCpu(CpuSpec())
    waits = np.empty(n)
    for i, (t, s) in enumerate(zip(arrivals.tolist(), work.tolist(), strict=True)):
        waits[i] = cpu.charge(t, s) - s - t
    expected = rho / (mu * (1 - rho))
    assert waits[n // 10:].mean() == pytest.approx(expected, rel=0.05)
    assert cpu.server.busy == pytest.approx(work.sum())


def test_a_long_decode_delays_a_short_call_by_its_remaining_work() -> None:
    """An enumerate decoding 1,000 rows holds the CPU; a register arriving while it decodes waits until
    the decode is done: its latency = the decode's remaining CPU work + its own."""
    call, item, n = 1e-4, 5e-6, 1000
    spec = {**NO_SERVER, "cpu": {"call": {"default": call, "query": call}, "per_item": {"query": item},
                                 "per_op": 0.0, "per_message": 0.0, "per_fanout": 0.0}}
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(1))
    rt = SimPyRuntime(simpy.Environment())
    c = Coordinator(Config(max_identities=None, auto_sweep=False), registry=reg, messaging=msg, runtime=rt)

    async def main() -> dict[str, float]:
        async with c:
            for i in range(n):
                await c.register(f"d{i}", {"g": 1})
            out: dict[str, float] = {}

            async def enumerate_() -> None:
                t0 = rt.now()
                assert len(await c.enumerate({"g": 1})) == n
                out["enumerate"] = rt.now() - t0

            async def register_later() -> None:
                await rt.sleep(call + 1e-3)  # arrives after the query was sent, while it decodes
                t0 = rt.now()
                await c.register("late", {"g": 2})
                out["register"] = rt.now() - t0

            await rt.gather(enumerate_(), register_later())
            return out

    out = rt.run(main())
    decode = item * n
    assert out["enumerate"] == pytest.approx(call + decode, rel=1e-6)
    remaining = call + decode - (call + 1e-3)
    assert out["register"] == pytest.approx(remaining + call, rel=1e-6)


def test_calibration_fit_recovers_known_cpu_costs_within_10_percent() -> None:
    """Synthetic phase timings (calls, items, CPU seconds) made from known costs, with 2 % noise per
    phase (what a few hundred timed calls show here): the fit recovers every cost within 10 %."""
    truth = {"register": 7e-5, "heartbeat": 5e-5, "query": (1.3e-4, 3.2e-6), "ids": (9e-5, 4.5e-7),
             "per_fanout": 4.5e-5, "per_message": 1.8e-6, "per_delivery": 1.1e-5}
    rng = np.random.default_rng(9)

    def noisy(x: float) -> float:
        return x * float(rng.normal(1.0, 0.02))

    samples: list[tuple[str, int, int, float]] = []
    for calls in (100, 80, 120):
        samples.append(("register", calls, 0, noisy(calls * truth["register"])))
        samples.append(("heartbeat", calls, 0, noisy(calls * truth["heartbeat"])))
    for kind in ("query", "ids"):
        a, b = truth[kind]
        for size in (1, 10, 100, 1000):
            samples.append((kind, 200, 200 * size, noisy(200 * (a + b * size))))
    ids_a, ids_b = truth["ids"]
    for size in (1, 10, 100, 1000):
        bare = 200 * (ids_a + truth["per_fanout"]) + 200 * size * (ids_b + truth["per_message"])
        samples.append(("multicast", 200, 200 * size, noisy(bare)))
        samples.append(("multicast_agents", 200, 200 * size, bare + 200 * size * truth["per_delivery"]))
    got = fit_cpu(samples, per_op=2e-5)
    assert got["call"]["register"] == pytest.approx(truth["register"], rel=0.1)
    assert got["call"]["heartbeat"] == pytest.approx(truth["heartbeat"], rel=0.1)
    for kind in ("query", "ids"):
        assert got["call"][kind] == pytest.approx(truth[kind][0], rel=0.1), kind
        assert got["per_item"][kind] == pytest.approx(truth[kind][1], rel=0.1), kind
    for key in ("per_fanout", "per_message", "per_delivery"):
        assert got[key] == pytest.approx(truth[key], rel=0.1), key
    assert got["per_op"] == 2e-5
    assert CpuSpec.from_dict(got).call["query"] == got["call"]["query"]


def test_cpu_spec_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="cpu.cores"):
        CpuSpec.from_dict({"cores": 0})
    with pytest.raises(ConfigError, match="did you mean 'per_item'"):
        CpuSpec.from_dict({"per_items": {}})
    with pytest.raises(ConfigError, match="unknown operation cpu.call.enumerate"):
        CpuSpec.from_dict({"call": {"enumerate": 1e-4}})
    with pytest.raises(ConfigError, match="cpu.per_op"):
        CpuSpec.from_dict({"per_op": -1})


def test_old_calibration_files_load_with_the_default_cpu_costs(tmp_path: Any) -> None:
    import json

    from mcastlab.sim import SimSpec
    from mcastlab.sim.cpu import CPU_DEFAULTS
    from mcastlab.sim.spec import DEFAULT_CALIBRATION

    old = json.loads(DEFAULT_CALIBRATION.read_text())
    old["sim"].pop("cpu", None)
    old["version"] = 1
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old))
    spec = SimSpec.from_dict({"calibration": str(path)})
    assert spec.cpu.per_op == CPU_DEFAULTS["per_op"]
    assert spec.cpu.call["query"] == CPU_DEFAULTS["call"]["query"]


@pytest.mark.parametrize(("per_delivery", "per_message"), [(5e-5, 1e-6), (1e-6, 5e-5)])
def test_a_publish_fan_out_ends_after_this_process_read_its_agents_receipts(
        per_delivery: float, per_message: float) -> None:
    """The server's reply to the flush comes behind the messages it delivered to this process's inboxes on
    the same connection: a fan-out to N in-process listeners ends after max(N x server, N x agent) work."""
    n = 200
    spec = {**NO_SERVER,
            "messaging": {"per_message": per_message, "flush": 1e-4, "delivery": 2e-4, "ack": 1e-5},
            "cpu": {"call": {"default": 0.0}, "per_item": {}, "per_message": 0.0, "per_fanout": 0.0,
                    "per_delivery": per_delivery, "per_op": 0.0, "per_target": 0.0}}
    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(1))

    async def body() -> float:
        async with Coordinator(Config(), runtime=rt, registry=reg, messaging=msg) as c:
            names = [f"d{i}" for i in range(n)]
            for name in names:
                await c.register(name, {"k": 1}, ttl=None)
            boxes = [c.inbox(name) for name in names]
            for b in boxes:
                await b.__aenter__()
            res = await c.multicast({"k": 1}, b"x", mode="publish")
            return res.duration_s - res.enumerate_s

    fan_out = rt.run(body())
    slow = max(per_delivery, per_message)
    assert fan_out == pytest.approx(n * slow + 2e-4, rel=0.1)  # the slower pipeline, then one delivery


def test_the_wake_curve_interpolates_from_zero_and_is_flat_after_the_last_gap() -> None:
    from mcastlab.sim.models import WakeCurve

    w = WakeCurve.fit({0.002: 1e-4, 0.02: 4e-4, 0.005: -1e-6})
    assert w is not None and w.gaps == (0.002, 0.005, 0.02) and w.seconds == (1e-4, 0.0, 4e-4)  # noise -> 0
    w = WakeCurve.from_dict({"gaps": [0.002, 0.02], "seconds": [1e-4, 4e-4]}, "w")
    assert w is not None and WakeCurve.from_dict(w.to_dict(), "w") == w
    assert w(0.0) == 0.0 and w(-1.0) == 0.0
    assert w(0.001) == pytest.approx(5e-5)  # half the first gap: half its extra
    assert w(0.011) == pytest.approx(2.5e-4)  # midway between the two points
    assert w(1.0) == pytest.approx(4e-4)
    assert WakeCurve.fit({}) is None


@pytest.mark.parametrize("bad", [{"gaps": [0.01]}, {"gaps": [0.02, 0.01], "seconds": [0, 0]},
                                 {"gaps": [0.0], "seconds": [0]}, {"gaps": [0.01], "seconds": [-1e-4]},
                                 {"gaps": [0.01], "seconds": [1, 2]}, {"gaps": ["x"], "seconds": [0]}, 3])
def test_wake_cpu_is_validated(bad: Any) -> None:
    with pytest.raises(ConfigError, match="cpu.wake_cpu"):
        CpuSpec.from_dict({"wake_cpu": bad})


def test_the_wake_cost_is_the_curve_at_the_cpus_idle_time() -> None:
    spec = CpuSpec.from_dict({"wake_cpu": {"gaps": [0.01], "seconds": [1e-3]}})
    cpu = SimCpu(spec)
    assert cpu.models_idle and cpu.wake_cost(0.005) == pytest.approx(5e-4)  # idle 5 ms since t=0
    assert cpu.charge(0.005, 1e-4) == pytest.approx(0.005 + 1e-4)  # work itself pays no wake-up
    assert cpu.wake_cost(0.005) == 0.0  # busy: a timer fires without sleeping
    assert cpu.wake_cost(0.005 + 1e-4 + 0.02) == pytest.approx(1e-3)  # long idle: flat after the last gap
    assert SimCpu(CpuSpec()).wake_cost(1.0) == 0.0  # no curve: no wake cost
    assert CpuSpec.from_dict(spec.to_dict()) == spec


def _generator_cpu(gap: float, wake: dict[str, Any] | None, n: int = 200) -> float:
    """CPU busy seconds per callback of a load generator (Context) firing ``n`` empty callbacks ``gap``
    apart on a simulated coordinator."""
    from mcastlab.measure.recorder import Recorder
    from mcastlab.workloads.context import Context

    cfg: dict[str, Any] = {"per_op": 0.0}
    if wake is not None:
        cfg["wake_cpu"] = wake
    reg, msg = make_sim_backends({**NO_SERVER, "cpu": cfg}, rng=np.random.default_rng(1))
    rt = SimPyRuntime(simpy.Environment())
    c = Coordinator(Config(max_identities=None, auto_sweep=False), registry=reg, messaging=msg, runtime=rt)

    async def main() -> float:
        async with c:
            ctx = Context(coordinator=c, seed=0, recorder=Recorder(), duration=1e9, ttl=None, agents="none",
                          cpu=reg.cpu)
            for k in range(n):
                ctx.at(0.01 + k * gap, lambda t: None)
            before = reg.cpu.server.busy
            await ctx.run_loop(0.01 + n * gap + 1.0)
            return (reg.cpu.server.busy - before) / n

    return rt.run(main())


def test_the_generator_waking_from_an_idle_sleep_costs_the_curve_and_a_busy_one_nothing() -> None:
    """Callbacks 10 ms apart on an idle CPU: each wake-up costs the curve at 10 ms; back to back (all at
    one instant) the generator sleeps once, until the first; without a curve nothing is charged."""
    curve = {"gaps": [0.001, 0.02], "seconds": [1e-4, 5e-4]}
    assert _generator_cpu(0.01, curve) == pytest.approx(1e-4 + 4e-4 * 9 / 19, rel=0.05)
    assert _generator_cpu(0.0, curve) == pytest.approx(_generator_cpu(0.01, curve) / 200, rel=0.05)
    assert _generator_cpu(0.01, None) == 0.0
