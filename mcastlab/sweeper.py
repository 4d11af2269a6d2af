"""The expiry sweeper: claims expired identities, once each, and sleeps until the next deadline.

It is built from a runtime, the config and callables (claim a batch, read the next deadline, report what
was claimed, optionally read the registry's stored count), so it knows nothing of the coordinator.
:meth:`Sweeper.sweep` claims every identity whose deadline has passed, batch by batch, reporting each
batch before asking for the next (a failure midway loses nothing already claimed). The background loop
(:meth:`start`) sleeps until the registry's next deadline (no shorter than ``sweep_resolution``, no
longer than ``sweep_interval``); a register with an earlier deadline wakes it early. The wake flag is
cleared *before* each sweep and every deadline counts as earlier while a sweep is in flight, so a
register landing during the sweep's round trips is never missed. Failures are counted, logged and
retried with backoff; the loop never dies of a backend error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcastlab.backends.base import ExpiredIdentity
from mcastlab.config import Config
from mcastlab.errors import OperationTimeoutError
from mcastlab.policy import Backoff, sweep_delay
from mcastlab.population import Population
from mcastlab.runtime.base import Runtime

log = logging.getLogger("mcastlab.sweeper")

Claim = Callable[[float, int], Awaitable[Sequence[ExpiredIdentity]]]
OnClaimed = Callable[[Sequence[ExpiredIdentity], float], None]


class Sweeper:
    """Claims expirations for one coordinator, in its runtime; see the module docstring."""

    def __init__(
        self,
        runtime: Runtime,
        config: Config,
        *,
        claim: Claim,
        next_deadline: Callable[[], Awaitable[float | None]],
        on_claimed: OnClaimed,
        population: Population,
        stored_count: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self._claim = claim
        self._next_deadline = next_deadline
        self._on_claimed = on_claimed
        self._population = population
        self._stored_count = stored_count
        self._backoff = Backoff(config.retry_backoff, config.retry_backoff_max)
        self._task: Any = None
        self._wake: Any = None
        self._next_wake = float("inf")
        self.expired_total = 0  # identities this sweeper claimed
        self.errors = 0  # background sweeps that failed (each logged)

    async def sweep(self) -> int:
        """Claim every identity whose deadline has passed; report each batch as it comes."""
        total = 0
        batch = self.config.sweep_batch
        runtime = self.runtime
        while True:
            claimed = await self._claim(runtime.now(), batch)
            if claimed:
                n = len(claimed)
                total += n
                self.expired_total += n
                self._population.removed(n)
                self._on_claimed(claimed, runtime.now())
            if len(claimed) < batch:
                return total

    # ------------------------------------------------------------------ background loop
    def start(self, is_open: Callable[[], bool]) -> None:
        """Run the loop until ``is_open()`` turns false or :meth:`stop`."""
        self._wake = self.runtime.event()
        self._task = self.runtime.spawn(self._loop(is_open))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def deadline_added(self, expires_at: float) -> None:
        """Wake the loop if ``expires_at`` comes before its planned wake-up."""
        if expires_at < self._next_wake and self._wake is not None:
            self._wake.set()

    async def _loop(self, is_open: Callable[[], bool]) -> None:
        cfg, runtime = self.config, self.runtime
        failures = 0
        sized_at = -float("inf")
        while is_open():
            self._wake.clear()
            self._next_wake = float("inf")
            try:
                await self.sweep()
                if self._stored_count is not None and runtime.now() - sized_at >= cfg.sweep_interval:
                    # right after a sweep the stored count is the live count; with several coordinators
                    # on one registry it is the only count that means anything
                    mark = self._population.mark()
                    self._population.resync(await self._stored_count(), mark)
                    sized_at = runtime.now()
                nxt = await self._next_deadline()
                failures = 0
                delay = sweep_delay(nxt, runtime.now(), interval=cfg.sweep_interval,
                                    resolution=cfg.sweep_resolution)
            except Exception:
                failures += 1
                self.errors += 1
                log.warning("expiry sweep failed (%d in a row); retrying", failures, exc_info=True)
                delay = min(cfg.sweep_interval, max(cfg.sweep_resolution, self._backoff.compute(failures)))
                delay = delay or cfg.sweep_interval  # no backoff and no resolution: still never retry at once
            self._next_wake = runtime.now() + delay
            if self._wake.is_set():
                continue
            try:
                await runtime.wait_for(self._wake.wait(), delay)
            except OperationTimeoutError:
                pass


__all__ = ["Sweeper"]
