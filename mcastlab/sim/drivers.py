"""Workload drivers for big simulated fleets: cohort heartbeats and Poisson multicasts.

:class:`CohortFleet` splits a :class:`~mcastlab.sim.fleet.FleetTable` into ``cohorts`` groups with
evenly spread phases; each cohort is ONE process that, every ``heartbeat`` seconds, decides churn for
its members with one vectorised draw (powered-on members die with rate ``churn_per_hour``; dead ones come
back after a mean of ``rejoin_after`` seconds), touches its live members in one pipelined batch and
re-registers the ones the registry no longer has. Expiries are left to the coordinator's sweeper, which
claims them (exactly once, with their lag) through ``SimRegistry.claim_expired``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcastlab.errors import BackendError, ClosedError
from mcastlab.sim.fleet import FleetTable
from mcastlab.sim.registry import SimRegistry


@dataclass(slots=True)
class FleetStats:
    """What a cohort driver did."""

    ticks: int = 0
    heartbeats: int = 0  # members touched successfully
    registrations: int = 0  # members (re-)registered
    failed_batches: int = 0
    failed_items: int = 0
    deaths: int = 0
    rejoins: int = 0


class CohortFleet:
    """Drive a FleetTable's heartbeats in cohorts; see the module docstring."""

    def __init__(
        self,
        registry: SimRegistry,
        fleet: FleetTable,
        *,
        ttl: float | None,
        heartbeat: float,
        rng: np.random.Generator,
        cohorts: int | None = None,
        churn_per_hour: float = 0.0,
        rejoin_after: float | None = None,
        start: float = 0.0,
        coordinator: Any = None,
        max_identities: int | None = None,
    ) -> None:
        self.registry, self.fleet = registry, fleet
        self.ttl, self.heartbeat = ttl, heartbeat
        self.cohorts = cohorts or max(1, min(fleet.size, round(heartbeat)))
        self.rng = rng
        self.p_die = 1.0 - math.exp(-churn_per_hour * heartbeat / 3600.0) if churn_per_hour > 0 else 0.0
        self.p_back = 1.0 - math.exp(-heartbeat / rejoin_after) if rejoin_after else 0.0
        self.start_at = start
        self.coordinator = coordinator  # its ``registered`` count (and gauge) follows bulk registers
        self.max_identities = max_identities
        self.on = np.ones(fleet.size, dtype=bool)
        self._members = [np.arange(c, fleet.size, self.cohorts, dtype=np.int64) for c in range(self.cohorts)]
        self.stats = FleetStats()
        self._tasks: list[Any] = []

    @property
    def runtime(self) -> Any:
        """The registry's runtime (bound when a coordinator opened it)."""
        rt = self.registry.runtime
        if rt is None:
            raise ClosedError("the simulated registry is not open: start the fleet inside 'async with "
                              "Coordinator(registry=...)'")
        return rt

    def start(self) -> CohortFleet:
        """Spawn one process per cohort."""
        self._tasks = [self.runtime.spawn(self._cohort(c)) for c in range(self.cohorts)]
        return self

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []

    def _churn(self, members: np.ndarray) -> None:
        if not (self.p_die or self.p_back):
            return
        on = self.on[members]
        u = self.rng.random(len(members))
        die = on & (u < self.p_die)
        back = ~on & (u < self.p_back)
        if die.any():
            self.on[members[die]] = False
            self.stats.deaths += int(np.count_nonzero(die))
        if back.any():
            self.on[members[back]] = True
            self.stats.rejoins += int(np.count_nonzero(back))

    async def _cohort(self, c: int) -> None:
        rt, reg, fleet, st = self.runtime, self.registry, self.fleet, self.stats
        members = self._members[c]
        t_next = self.start_at + c * self.heartbeat / self.cohorts
        await rt.sleep(t_next - rt.now())
        first = True
        while True:
            if not first:
                self._churn(members)
            first = False
            active = members[self.on[members]]
            st.ticks += 1
            if len(active):
                try:
                    missing = await reg.touch_many(fleet, active, now=rt.now(), ttl=self.ttl)
                    st.heartbeats += len(active) - len(missing)
                    if len(missing):
                        added = await reg.upsert_many(
                            fleet, missing, now=rt.now(), ttl=self.ttl, max_identities=self.max_identities
                        )
                        st.registrations += len(missing)
                        if self.coordinator is not None and added:
                            self.coordinator.population.added(added)
                except BackendError:
                    st.failed_batches += 1
                    st.failed_items += len(active)
            t_next += self.heartbeat
            await rt.sleep(t_next - rt.now())


class Broadcaster:
    """Poisson multicasts: at rate ``rate`` per second, multicast to a randomly chosen filter."""

    def __init__(
        self,
        coordinator: Any,
        filters: Sequence[Any],
        *,
        rate: float,
        rng: np.random.Generator,
        payload: bytes = b"x",
        mode: str | None = None,
        start: float = 0.0,
        until: float | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.filters = [coordinator.compile(f) for f in filters]
        self.rate, self.rng, self.payload, self.mode = rate, rng, payload, mode
        self.start_at, self.until = start, until
        self.sent = 0
        self.targeted = 0
        self.delivered = 0
        self.failed_ops = 0
        self._task: Any = None

    def start(self) -> Broadcaster:
        self._task = self.coordinator.runtime.spawn(self._run())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        rt, rng = self.coordinator.runtime, self.rng
        await rt.sleep(self.start_at - rt.now())
        n = len(self.filters)
        while self.until is None or rt.now() < self.until:
            gaps = rng.exponential(1.0 / self.rate, 256).tolist()
            picks = rng.integers(0, n, 256).tolist()
            for gap, k in zip(gaps, picks, strict=True):
                await rt.sleep(gap)
                if self.until is not None and rt.now() >= self.until:
                    return
                rt.spawn(self._one(self.filters[k]))

    async def _one(self, flt: Any) -> None:
        try:
            res = await self.coordinator.multicast(flt, self.payload, mode=self.mode)
        except BackendError:
            self.failed_ops += 1
            return
        self.sent += 1
        self.targeted += res.targeted
        self.delivered += res.delivered


__all__ = ["Broadcaster", "CohortFleet", "FleetStats"]
