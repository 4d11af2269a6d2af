"""Simulation benchmark (not a test): events/s against bare SimPy, a presence hour and an IoT hour.

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
from mcastlab.sim import Broadcaster, CohortFleet, DeliveryLog, make_sim_backends

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


# ---------------------------------------------------------------- fleets
def fleet_hour(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    """One simulated hour of the presence or IoT workload; returns wall time and counts."""
    rt, reg, msg, c = _sim_world()
    rng_fleet, rng_bc = np.random.default_rng(SEED).spawn(2)
    expired = [0]
    c.add_listener(lambda e: expired.__setitem__(0, expired[0] + 1) if hasattr(e, "lag_s") else None)
    sink = DeliveryLog()
    if kind == "presence":
        n = p["users"]
        rooms = n // p["room_size"]
        fleet = reg.add_fleet(
            "user-",
            n,
            [{"room": f"room-{r:05d}", "status": "online"} for r in range(rooms)],
            np.arange(n) % rooms,
        )
        msg.attach_sink(sink, "user-")
        driver = CohortFleet(
            reg,
            fleet,
            ttl=p["ttl"],
            heartbeat=p["heartbeat"],
            rng=rng_fleet,
            churn_per_hour=p["sessions_per_hour"],
            rejoin_after=p["offline_mean_s"],
            coordinator=c,
        )
        filters = [{"room": f"room-{r:05d}"} for r in range(rooms)]
        bc = Broadcaster(
            c,
            filters,
            rate=p["broadcasts_per_s"],
            rng=rng_bc,
            mode="publish",
            start=p["heartbeat"],
            until=p["hour"],
        )
    else:
        n = p["devices"]
        versions = [f"1.{v}.0" for v in range(p["versions"])]
        groups = [{"firmware_version": v, "status": "online", "kind": "sensor"} for v in versions]
        fleet = reg.add_fleet("dev-", n, groups, np.arange(n) % p["versions"])
        msg.attach_sink(sink, "dev-")
        driver = CohortFleet(
            reg,
            fleet,
            ttl=p["ttl"],
            heartbeat=p["heartbeat"],
            rng=rng_fleet,
            churn_per_hour=p["deaths_per_hour"],
            rejoin_after=p["offline_mean_s"],
            coordinator=c,
        )
        old = f'firmware_version < v"{versions[1]}"'  # 10 % of the fleet
        bc = Broadcaster(
            c,
            [old],
            rate=1.0 / p["firmware_every_s"],
            rng=rng_bc,
            mode="publish",
            start=p["heartbeat"],
            until=p["hour"],
        )

    async def main() -> None:
        await c.open()
        driver.start()
        bc.start()
        await rt.sleep(p["hour"])
        driver.stop()
        bc.stop()
        await c.close()

    k0 = scheduled(rt.env)
    dt, _ = timed(lambda: rt.run(main()))
    st = driver.stats
    model_events = (
        st.heartbeats
        + st.registrations
        + expired[0]
        + len(sink)
        + bc.sent
        + sum(x.count for x in reg.stats.ops.values())
    )
    return {
        "wall_s": dt,
        "kernel_events": scheduled(rt.env) - k0,
        "model_events": model_events,
        "heartbeats": st.heartbeats,
        "registrations": st.registrations,
        "expired": expired[0],
        "deliveries": len(sink),
        "multicasts": bc.sent,
        "deaths": st.deaths,
        "rejoins": st.rejoins,
        "bytes_per_identity": fleet.nbytes / n,
        "present_at_end": fleet.n_present,
        "p50_delivery_ms": float(np.median(sink.latency_s)) * 1e3 if len(sink) else float("nan"),
    }


def report_fleet(title: str, r: dict[str, Any], goal_s: float) -> None:
    print(f"\n{title}")
    print(
        f"  wall time          {r['wall_s']:8.1f} s   goal < {goal_s:.0f} s   "
        f"ratio goal/actual {goal_s / r['wall_s']:.1f}x   {'PASS' if r['wall_s'] < goal_s else 'FAIL'}"
    )
    print(
        f"  model events       {r['model_events']:>12,}  ({r['model_events'] / r['wall_s']:,.0f}/s)   "
        f"kernel events {r['kernel_events']:,} ({r['kernel_events'] / r['wall_s']:,.0f}/s)"
    )
    print(
        f"  heartbeats {r['heartbeats']:,}  registrations {r['registrations']:,}  expiries {r['expired']:,}  "
        f"deaths {r['deaths']:,}  rejoins {r['rejoins']:,}"
    )
    print(
        f"  multicasts {r['multicasts']:,}  deliveries {r['deliveries']:,}  delivery p50 "
        f"{r['p50_delivery_ms']:.3f} ms  memory/identity {r['bytes_per_identity']:.0f} B "
        f"(columns + deadline heap)  present at end {r['present_at_end']:,}"
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
    before = bare_simpy(n_events)
    pr = fleet_hour("presence", presence)
    after = bare_simpy(n_events)
    bares += [before, after]
    model_rate = pr["model_events"] / pr["wall_s"]
    ratio = model_rate / ((before + after) / 2)
    print(
        f"  {'presence hour, model events (batched)':48s} {model_rate:>12,.0f} ev/s   ratio "
        f"{ratio:.2f}   {'PASS' if ratio >= 0.5 else 'below goal'}"
    )
    print(
        f"  {'(bare SimPy yield env.timeout loop, median)':48s} {np.median(bares):>12,.0f} ev/s   "
        f"(min {min(bares):,.0f}, max {max(bares):,.0f}: a shared machine)"
    )
    report_fleet(
        f"2. Presence hour: {presence['users']:,} users, TTL {presence['ttl']:.0f} s, heartbeats every "
        f"{presence['heartbeat']:.0f} s, rooms of {presence['room_size']}, "
        f"{presence['broadcasts_per_s']:.0f} room broadcasts/s",
        pr,
        60.0,
    )
    if not args.skip_iot:
        r = fleet_hour("iot", iot)
        report_fleet(
            f"3. IoT hour: {iot['devices']:,} devices, TTL {iot['ttl']:.0f} s, heartbeats every "
            f"{iot['heartbeat']:.0f} s, firmware multicast to 10 % every {iot['firmware_every_s']:.0f} s",
            r,
            600.0,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
