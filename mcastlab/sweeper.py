"""The expiry sweeper: the coordinator's one background task.

It sleeps until the registry's next deadline (no shorter than ``sweep_resolution``, no longer than
``sweep_interval``), then has the coordinator claim what expired. A register with an earlier deadline
wakes it early; the wake flag is cleared *before* each sweep and every deadline counts as earlier
while a sweep is in flight, so a register landing during the sweep's round trips is never missed.
Failures are counted and retried with backoff; the sweeper never dies of a backend error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcastlab.errors import OperationTimeoutError
from mcastlab.policy import Backoff, sweep_delay

if TYPE_CHECKING:
    from mcastlab.coordinator import Coordinator


class Sweeper:
    """Runs ``coordinator.sweep()`` at each deadline, in the coordinator's runtime."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator
        self._backoff = Backoff(coordinator.config.retry_backoff, coordinator.config.retry_backoff_max)
        self._task: Any = None
        self._wake: Any = None
        self._next_wake = float("inf")

    def start(self) -> None:
        self._wake = self.c.runtime.event()
        self._task = self.c.runtime.spawn(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def deadline_added(self, expires_at: float) -> None:
        """Wake the sweeper if ``expires_at`` comes before its planned wake-up."""
        if expires_at < self._next_wake and self._wake is not None:
            self._wake.set()

    async def _loop(self) -> None:
        c = self.c
        cfg, runtime = c.config, c.runtime
        failures = 0
        stored = getattr(c.registry, "identities", None)  # optional: the registry's own count
        sized_at = -float("inf")
        while c.is_open:
            self._wake.clear()
            self._next_wake = float("inf")
            try:
                await c.sweep()
                if stored is not None and runtime.now() - sized_at >= cfg.sweep_interval:
                    # right after a sweep the stored count is the live count; with several coordinators
                    # on one registry it is the only count that means anything
                    c.registered = await stored()
                    sized_at = runtime.now()
                nxt = await c.registry.next_deadline()
                failures = 0
                delay = sweep_delay(nxt, runtime.now(), interval=cfg.sweep_interval,
                                    resolution=cfg.sweep_resolution)
            except Exception:
                failures += 1
                c.sweep_errors += 1
                delay = min(cfg.sweep_interval, max(cfg.sweep_resolution, self._backoff.compute(failures)))
            self._next_wake = runtime.now() + delay
            if self._wake.is_set():
                continue
            try:
                await runtime.wait_for(self._wake.wait(), delay)
            except OperationTimeoutError:
                pass


__all__ = ["Sweeper"]
