"""The registered gauge (Population): a resync never loses a change that lands while the count is read."""

from __future__ import annotations

from typing import Any

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryMessaging, MemoryRegistry
from mcastlab.population import Population
from mcastlab.runtime import SimPyRuntime

GAUGE = "multicast_registry_registered_identities"


def test_changes_after_the_mark_survive_a_resync() -> None:
    p = Population()
    p.added(3)
    mark = p.mark()
    p.added()  # lands while the registry is being read
    p.removed(2)
    p.resync(10, mark)  # the registry said 10 before those two changes
    assert p.value == 9
    p.resync(9, p.mark())
    assert p.value == 9


def test_the_value_is_never_negative() -> None:
    p = Population()
    p.removed(5)
    assert p.value == 0


class SlowCount(MemoryRegistry):
    """A registry whose stored count is read at once but answered ``delay`` seconds later (a round trip)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.reads = 0
        self._rt: Any = None

    async def open(self, runtime: Any = None) -> None:
        self._rt = runtime
        await super().open(runtime)

    async def identities(self) -> int:
        n = await super().identities()
        self.reads += 1
        await self._rt.sleep(self.delay)
        return n


def test_a_register_during_the_gauge_resync_is_not_lost(sim: SimPyRuntime) -> None:
    reg = SlowCount(delay=0.5)
    cfg = Config(sweep_interval=1.0, sweep_resolution=0.1)

    async def body() -> list[tuple[float, float]]:
        seen = []
        async with Coordinator(cfg, runtime=sim, registry=reg, messaging=MemoryMessaging()) as c:
            await c.register("a", {}, ttl=None)
            for i in range(8):  # registers at 0.25 s steps: several land inside a 0.5 s count read
                await sim.sleep(0.25)
                await c.register(f"d{i}", {}, ttl=None)
                seen.append((c.metrics.value(GAUGE), float(await c.count())))
            await sim.sleep(3)
            seen.append((c.metrics.value(GAUGE), float(await c.count())))
        return seen

    seen = sim.run(body())
    assert reg.reads >= 2  # resyncs did run while registers landed
    assert all(gauge == alive for gauge, alive in seen), seen
