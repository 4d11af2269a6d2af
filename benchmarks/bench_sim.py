"""Simulation benchmark (not a test): events/s against bare SimPy, a presence hour and an IoT hour
(the last two through the scenario runner, as a user runs them).

Run ``.venv/bin/python benchmarks/bench_sim.py`` (full sizes; the 1M-device hour takes minutes) or with
``--quick`` (10x smaller fleets). Prints each figure beside its goal and the ratio; all from one run on
this machine, because shared 2-core machines make absolute times unreliable.

Events are counted two ways. *Kernel events* are SimPy events scheduled (``env._eid``), the unit bare
SimPy is measured in; tiers show what each layer (runtime, simulated backend, coordinator) costs per
event. *Model events* are what the simulated world did — heartbeats, registrations, expiries,
deliveries, operations — which the scale path batches, so one kernel event carries thousands of them.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from mcastlab import Config, Coordinator
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import make_sim_backends

SEED = 20240601
EVENTS_CLIENTS = 2_000
ROUNDS = 3
PRESENCE = {
    "users": 100_000,
    "room_size": 50,
    "ttl": 60.0,
    "heartbeat": 20.0,
    "broadcasts_per_s": 10.0,
    "sessions_per_hour": 1.0,
    "offline_mean_s": 600.0,
    "hour": 3600.0,
}
IOT = {
    "devices": 1_000_000,
    "ttl": 300.0,
    "heartbeat": 60.0,
    "versions": 10,
    "firmware_every_s": 300.0,
    "deaths_per_hour": 0.02,
    "offline_mean_s": 1800.0,
    "hour": 3600.0,
}
SPEC: dict[str, Any] = {"messaging": {"inline": True}}  # publish-only workloads: one fan-out worker


def scheduled(env: simpy.Environment) -> int:
    """SimPy events scheduled so far (SimPy numbers every scheduled event)."""
    return next(env._eid)  # type: ignore[attr-defined]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------- events/s tiers
def bare_simpy(n_events: int) -> float:
    env = simpy.Environment()
    rng = np.random.default_rng(SEED)
    gaps = rng.exponential(1.0, 4096).tolist()

    def client(k: int) -> Any:
        i = k
        while True:
            yield env.timeout(gaps[i & 4095])
            i += 1

    for k in range(EVENTS_CLIENTS):
        env.process(client(k))
    horizon = n_events / EVENTS_CLIENTS
    dt, _ = timed(lambda: env.run(until=horizon))
    return scheduled(env) / dt


def _sim_world(spec: Any = None) -> tuple[SimPyRuntime, Any, Any, Coordinator]:
    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends(
        spec if spec is not None else SPEC, rng=np.random.default_rng(SEED)
    )
    c = Coordinator(
        Config(max_identities=None, default_ttl=60.0), registry=reg, messaging=msg, runtime=rt, name="bench"
    )
    return rt, reg, msg, c


def tier(kind: str, n_events: int) -> float:
    """Kernel events/s with ``EVENTS_CLIENTS`` coroutines looping over one kind of awaited step."""
    rt, reg, _msg, c = _sim_world()
    env = rt.env
    gaps = np.random.default_rng(SEED).exponential(1.0, 4096).tolist()
    names = [f"c{k:05d}" for k in range(EVENTS_CLIENTS)]

    async def setup() -> None:
        await c.open()
        for n in names:
            await c.register(n, {"room": n[-2:]}, ttl=1e9)

    rt.run(setup())
    sleep = rt.sleep

    async def runtime_only(k: int) -> None:
        i = k
        while True:
            await sleep(gaps[i & 4095])
            i += 1

    async def backend(k: int) -> None:
        i, name, touch = k, names[k], reg.touch
        while True:
            await sleep(gaps[i & 4095])
            await touch(name, 1e9, now=env.now)
            i += 1

    async def coordinator(k: int) -> None:
        i, name, hb = k, names[k], c.heartbeat
        while True:
            await sleep(gaps[i & 4095])
            await hb(name, ttl=1e9)
            i += 1

    body = {"runtime": runtime_only, "backend": backend, "coordinator": coordinator}[kind]
    for k in range(EVENTS_CLIENTS):
        rt.spawn(body(k))
    per_loop = 1 if kind == "runtime" else 2
    start_events = scheduled(env)
    horizon = env.now + n_events / EVENTS_CLIENTS / per_loop
    dt, _ = timed(lambda: env.run(until=horizon))
    return (scheduled(env) - start_events) / dt


# ---------------------------------------------------------------- scenario hours
def scenario_hour(path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """One simulated hour of a shipped scenario through the scenario runner (its engine chosen as a
    user's run would choose it); returns wall time and what the simulated world did."""
    from mcastlab.workloads import run_scenario

    over = {"duration": 3600, "warmup": 0, **overrides}
    gc.collect()
    dt, r = timed(lambda: run_scenario(path, overrides=over, progress=False))
    ops = r.ops
    model_events = int(ops["matched"].where(ops["stream"].isin(["gateway", "gateway-register"]), 1).sum())
    model_events += len(r.deliveries) + len(r.expirations)
    return {
        "wall_s": dt,
        "engine": r.manifest["engine"],
        "identities": r.manifest["counts"]["identities"],
        "model_events": model_events,
        "op_rows": len(ops),
        "expired": len(r.expirations),
        "deliveries": len(r.deliveries),
        "multicasts": len(r.multicasts),
        "p50_delivery_ms": float(r.deliveries["latency_s"].median()) * 1e3,
        "busiest": max((r.manifest["resources"].get("busy") or {"-": 0.0}).items(), key=lambda kv: kv[1]),
    }


def report_hour(title: str, r: dict[str, Any], goal_s: float) -> None:
    print(f"\n{title}")
    print(
        f"  wall time          {r['wall_s']:8.1f} s   goal < {goal_s:.0f} s   "
        f"ratio goal/actual {goal_s / r['wall_s']:.1f}x   {'PASS' if r['wall_s'] < goal_s else 'FAIL'}"
    )
    print(
        f"  engine {r['engine']}, {r['identities']:,} identities; model events {r['model_events']:,} "
        f"({r['model_events'] / r['wall_s']:,.0f}/s) in {r['op_rows']:,} op rows"
    )
    print(
        f"  multicasts {r['multicasts']:,}  deliveries {r['deliveries']:,} "
        f"(p50 {r['p50_delivery_ms']:.2f} ms)  expiries {r['expired']:,}  "
        f"busiest resource {r['busiest'][0]} {r['busiest'][1]:.0%}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x smaller fleets and event counts")
    ap.add_argument("--skip-iot", action="store_true", help="skip the IoT hour")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    n_events = 300_000 // scale
    presence = {**PRESENCE, "users": PRESENCE["users"] // scale}
    iot = {**IOT, "devices": IOT["devices"] // scale}
    print(
        f"bench_sim  python {sys.version.split()[0]}  simpy {simpy.__version__}  numpy {np.__version__}"
        f"  seed {SEED}  {'QUICK ' if args.quick else ''}(spec: {SPEC})"
    )

    print(
        f"\n1. Events/s vs bare SimPy ({EVENTS_CLIENTS:,} concurrent clients, {n_events:,} events per "
        f"measurement; each ratio is the median of {ROUNDS} rounds against bare SimPy measured just before "
        "and after it; goal ratio >= 0.5)"
    )
    bares: list[float] = []
    for kind, label in (
        ("runtime", "coroutines on SimPyRuntime (await sleep)"),
        ("backend", "+ SimRegistry.touch per loop (queue+latency)"),
        ("coordinator", "+ Coordinator.heartbeat per loop"),
    ):
        rates, ratios = [], []
        for _ in range(ROUNDS):
            before, rate, after = bare_simpy(n_events), tier(kind, n_events), bare_simpy(n_events)
            bares += [before, after]
            rates.append(rate)
            ratios.append(rate / ((before + after) / 2))
        ratio = float(np.median(ratios))
        print(
            f"  {label:48s} {np.median(rates):>12,.0f} ev/s   ratio {ratio:.2f}   "
            f"{'PASS' if ratio >= 0.5 else 'below goal'}"
        )
    print(
        f"  {'(bare SimPy yield env.timeout loop, median)':48s} {np.median(bares):>12,.0f} ev/s   "
        f"(min {min(bares):,.0f}, max {max(bares):,.0f}: a shared machine)"
    )
    users = presence["users"] // 10  # no cohort mode for presence: the per-identity engine
    pr = scenario_hour("scenarios/user-presence.yaml", {"workload.users": users, "measure.agents": "none"})
    report_hour(f"2. Presence hour: {users:,} users (scenarios/user-presence.yaml, per-identity engine)",
                pr, 60.0)
    if not args.skip_iot:
        r = scenario_hour("scenarios/iot-device-management.yaml", {"workload.devices": iot["devices"]})
        report_hour(f"3. IoT hour: {iot['devices']:,} devices (scenarios/iot-device-management.yaml)", r,
                    600.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
