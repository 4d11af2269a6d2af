"""Same seed, same frames bit for bit; a different seed gives different frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import simpy

from mcastlab import Config, Coordinator
from mcastlab.errors import McastlabError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import make_sim_backends
from mcastlab.workloads.agents import DeliveryLog, start_agents

SPEC = {
    "faults": [
        {"target": "registry", "kind": "errors", "probability": 0.05, "ops": ["register", "heartbeat"]},
        {"target": "messaging", "kind": "drop", "probability": 0.02},
        {"target": "messaging", "kind": "outage", "start": 20, "duration": 2},
        {"target": "registry", "kind": "slow", "start": 30, "duration": 5, "factor": 3},
    ],
}


async def churning_fleet(rt: SimPyRuntime, reg: Any, fleet: Any, rng: np.random.Generator) -> None:
    """A fleet driven in bulk: five cohorts heartbeat every 5 s; some members stop, some come back."""
    cohorts = [np.arange(c, fleet.size, 5) for c in range(5)]
    on = np.ones(fleet.size, bool)
    for tick in range(12):
        for c in cohorts:
            flip = rng.random(len(c)) < 0.05
            on[c[flip]] = ~on[c[flip]]
            live = c[on[c]]
            try:
                missing = await reg.touch_many(fleet, live, now=rt.now(), ttl=15)
                if len(missing) or tick == 0:
                    await reg.upsert_many(fleet, live if tick == 0 else missing, now=rt.now(), ttl=15)
            except McastlabError:
                pass
        await rt.sleep(5)


def run(seed: int, sim_events: Any) -> dict[str, pd.DataFrame]:
    """A small mixed run: agents, heartbeats that stop, multicasts in both modes, a churning fleet."""
    base = np.random.default_rng(seed)
    rng_backends, rng_work, rng_fleet = base.spawn(3)
    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends(SPEC, rng=rng_backends)
    c = Coordinator(
        Config(default_ttl=10, max_identities=None, send_retries=1),
        registry=reg,
        messaging=msg,
        runtime=rt,
        name="det",
    )
    rec = sim_events()
    c.add_listener(rec)
    fleet = reg.add_fleet("fl-", 500, [{"fw": "1.0"}, {"fw": "2.0"}], np.arange(500) % 2)
    sink = DeliveryLog()
    msg.attach_sink(sink, "fl-")
    names = [f"u{i:02d}" for i in range(40)]

    async def main() -> None:
        await c.open()
        for i, n in enumerate(names):
            try:
                await c.register(n, {"room": f"r{i % 4}"})
            except McastlabError:
                pass
        pool = start_agents(c, names, kind="user")
        rt.spawn(churning_fleet(rt, reg, fleet, rng_fleet))
        alive = set(names)
        for _ in range(60):
            await rt.sleep(float(rng_work.exponential(1.0)))
            alive -= {n for n in sorted(alive) if rng_work.random() < 0.03}
            for n in sorted(alive):
                try:
                    await c.heartbeat(n)
                except McastlabError:
                    pass
            room = f"r{rng_work.integers(4)}"
            mode = "ack" if rng_work.random() < 0.5 else "publish"
            await c.multicast({"room": room}, b"m", mode=mode)
            await c.multicast('fw == "1.0"', b"fw", mode="publish")
            await c.enumerate({"room": room})
        await rt.sleep(30)
        pool.stop()
        deliveries.append(pool.log.to_frame(run="det"))
        await c.close()

    deliveries: list[pd.DataFrame] = []
    rt.run(main())
    return {
        "ops": rec.ops_frame(),
        "expirations": rec.expirations_frame(),
        "deliveries": deliveries[0],
        "fleet": sink.to_frame(run="det"),
        "stats": reg.stats.to_frame(),
    }  # type: ignore[dict-item]


def test_same_seed_gives_identical_frames(sim_events: Any) -> None:
    a, b = run(11, sim_events), run(11, sim_events)
    assert len(a["ops"]) > 300 and len(a["deliveries"]) > 100 and len(a["expirations"]) > 5
    assert len(a["fleet"]) > 1000
    assert not a["ops"].ok.all()  # faults happened
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], check_exact=True)


def test_different_seed_differs(sim_events: Any) -> None:
    a, b = run(11, sim_events), run(12, sim_events)
    assert not a["ops"].equals(b["ops"])
    assert not a["deliveries"].equals(b["deliveries"])
