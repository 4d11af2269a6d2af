"""Failure paths of the core: lost wake-ups, partial sweeps, failing journals and listeners, failed opens.

The small backend subclasses here inject faults into the embedded backends to drive the coordinator's
own error handling; live servers are killed for real in tests/backends.
"""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab import Config, Coordinator, ExpirationEvent
from mcastlab.backends import MemoryMessaging, MemoryRegistry, SqliteDurability
from mcastlab.backends.base import ExpiredIdentity
from mcastlab.errors import BackendError, BackendUnavailableError, UsageError
from mcastlab.runtime import Runtime, SimPyRuntime


class SlowRegistry(MemoryRegistry):
    """Round trips take time, as with a real server (so a register can land mid-sweep)."""

    def __init__(self, rt: Runtime, delay: float) -> None:
        super().__init__()
        self.rt, self.delay = rt, delay

    async def next_deadline(self) -> float | None:
        await self.rt.sleep(self.delay)
        got = await super().next_deadline()
        await self.rt.sleep(self.delay)
        return got


def test_a_register_during_a_sweep_is_not_missed(sim: SimPyRuntime) -> None:
    cfg = Config(sweep_interval=10.0, sweep_resolution=0.01)
    got: list[ExpirationEvent] = []

    async def body() -> None:
        async with Coordinator(cfg, runtime=sim, registry=SlowRegistry(sim, 0.05)) as c:
            c.add_listener(lambda e: got.append(e) if isinstance(e, ExpirationEvent) else None)
            await sim.sleep(0.07)  # the sweeper is inside next_deadline's round trips now
            await c.register("b", {}, ttl=1)
            await sim.sleep(20)

    sim.run(body())
    assert [e.identity for e in got] == ["b"]
    assert got[0].lag_s < 0.2  # not the 9 s of a lost wake-up (sweep_interval=10)


class FlakyClaims(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.armed = -1  # claims left before one fails; negative: never

    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        if self.armed == 0:
            self.armed = -1
            raise ConnectionError("redis went away")
        self.armed -= 1
        return await super().claim_expired(now=now, limit=limit)


def test_a_sweep_failing_midway_keeps_the_counts_it_claimed(sim: SimPyRuntime) -> None:
    reg = FlakyClaims()
    cfg = Config(sweep_batch=2, sweep_interval=3600, sweep_resolution=3600)

    async def body() -> Any:
        c = Coordinator(cfg, runtime=sim, registry=reg)
        for i in range(5):
            await c.register(f"d{i}", {}, ttl=1)
        await sim.sleep(2)
        reg.armed = 1  # the first batch of 2 is claimed, the second round trip fails
        with pytest.raises(BackendError, match="redis went away"):
            await c.sweep()
        first = c.expired_total
        await c.sweep()
        return first, c.expired_total, c.metrics.value("multicast_registry_ttl_expiration_total")

    assert sim.run(body()) == (2, 5, 5)


class FailingJournal(SqliteDurability):
    async def outcome(self, message_id: str, statuses: dict[str, str], *, now: float) -> None:
        raise RuntimeError("disk I/O error")


def test_a_failing_journal_never_loses_the_fan_out(rt: Runtime) -> None:
    async def body() -> Any:
        async with Coordinator(Config(max_in_flight=2), runtime=rt, durability=FailingJournal()) as c:
            for i in range(5):
                await c.register(f"d{i}", {})
            async with c.inbox("d0"):
                res = await c.multicast(None, b"x", mode="ack")
            return res, c.metrics.value("multicast_registry_operation_errors_total", op="multicast",
                                        kind="DurabilityOutcome")

    res, errors = rt.run(body())
    assert (res.targeted, res.delivered, res.failed) == (5, 1, 4)
    assert errors >= 1


def test_message_ids_do_not_repeat_across_restarts_of_a_named_coordinator(sim: SimPyRuntime,
                                                                             tmp_path: Any) -> None:
    db = str(tmp_path / "journal.db")

    async def one(payload: bytes) -> str:
        async with Coordinator(runtime=sim, name="gateway", durability=SqliteDurability(db)) as c:
            await c.register("dev-1", {})
            return (await c.multicast(None, payload, mode="ack")).message_id

    async def body() -> Any:
        first = await one(b"reboot")
        await sim.sleep(5)  # the process "restarts" later
        second = await one(b"update-firmware")
        async with Coordinator(runtime=sim, durability=SqliteDurability(db)) as c:
            missed = await c.replay("dev-1")
        return first, second, sorted(m.payload for m in missed)

    first, second, missed = sim.run(body())
    assert first != second
    assert missed == [b"reboot", b"update-firmware"]


def test_a_broken_listener_does_not_fail_the_operation(rt: Runtime) -> None:
    def broken(event: Any) -> None:
        raise ValueError("bug in my dashboard")

    async def body() -> Any:
        async with Coordinator(runtime=rt) as c:
            c.add_listener(broken)
            await c.register("a", {})
            return await c.count(), c.metrics.value("multicast_registry_operation_errors_total",
                                                    op="listener", kind="ListenerError")

    assert rt.run(body()) == (1, 2)


class DeadMessaging(MemoryMessaging):
    async def open(self, runtime: Runtime) -> None:
        raise BackendUnavailableError("nats down")


class CountingRegistry(MemoryRegistry):
    async def open(self, runtime: Runtime | None = None) -> None:
        await super().open(runtime)

    @property
    def opens(self) -> int:
        return self._opens


def test_a_failed_open_leaves_nothing_open(rt: Runtime) -> None:
    reg = CountingRegistry()

    async def body() -> None:
        c = Coordinator(runtime=rt, registry=reg, messaging=DeadMessaging())
        for _ in range(2):
            with pytest.raises(BackendUnavailableError):
                await c.open()
        assert not c.is_open
        await c.close()

    rt.run(body())
    assert reg.opens == 0


def test_inbox_timeouts_are_validated(rt: Runtime) -> None:
    async def body() -> None:
        async with Coordinator(runtime=rt) as c, c.inbox("d") as box:
            for bad in ("1", -1, float("nan"), True):
                with pytest.raises(UsageError, match="timeout must be"):
                    await box.get(timeout=bad)

    rt.run(body())
