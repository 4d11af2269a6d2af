"""Multicast fan-out: bounded window, retries with backoff, per-send timeout, failure isolation.

Test doubles here stand in for a *messaging backend* to exercise the coordinator's fan-out logic;
live backends are tested against real servers in tests/backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, ERROR, TIMEOUT, UNAVAILABLE, Capabilities, MemoryMessaging, Message
from mcastlab.errors import BackendUnavailableError, DeliveryError
from mcastlab.runtime import Runtime, SimPyRuntime


class ScriptedMessaging(MemoryMessaging):
    """Memory messaging whose sends take time and fail as scripted per identity."""

    capabilities = Capabilities()  # sends take time: timed and windowed by the coordinator
    modes: Sequence[str] = ("publish", "ack")

    def __init__(self, runtime: Runtime, delay: float = 0.0, script: dict[str, list[str]] | None = None,
                 flush_fails: bool = False) -> None:
        super().__init__()
        self.rt = runtime
        self.delay = delay
        self.script = script or {}
        self.flush_fails = flush_fails
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts: dict[str, list[tuple[int, float]]] = {}

    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        self.attempts.setdefault(message.identity, []).append((message.attempt, self.rt.now()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            plan = self.script.get(message.identity, [])
            step = plan[message.attempt - 1] if message.attempt <= len(plan) else "ok"
            if step == "hang":
                await self.rt.sleep(10_000)
            await self.rt.sleep(self.delay)
            if step == "down":
                raise BackendUnavailableError("server gone")
            if step == "boom":
                raise RuntimeError("unexpected library bug")
            if step == "reject":
                raise DeliveryError("rejected", status=ERROR)
            await super().send(message, mode=mode, timeout=timeout)
        finally:
            self.in_flight -= 1

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        if self.flush_fails:
            raise BackendUnavailableError("flush failed: connection lost")


def fleet(n: int) -> list[str]:
    return [f"d{i:03d}" for i in range(n)]


def test_window_bounds_concurrency(sim: SimPyRuntime) -> None:
    m = ScriptedMessaging(sim, delay=0.01)

    async def body() -> Any:
        async with Coordinator(Config(max_in_flight=8), runtime=sim, messaging=m) as c:
            for ident in fleet(100):
                await c.register(ident, {"g": 1})
            t0 = sim.now()
            res = await c.multicast({"g": 1}, b"x")
            return res, sim.now() - t0

    res, took = sim.run(body())
    assert res.delivered == 100
    assert m.max_in_flight == 8
    assert took > 100 / 8 * 0.01 - 1e-9  # 13 rounds of 10 ms at width 8


def test_retries_with_exponential_backoff_then_success(sim: SimPyRuntime) -> None:
    m = ScriptedMessaging(sim, script={"d000": ["down", "down"], "d001": ["reject"]})
    cfg = Config(send_retries=2, retry_backoff=0.1, retry_backoff_max=1.0)

    async def body() -> Any:
        async with Coordinator(cfg, runtime=sim, messaging=m) as c:
            for ident in fleet(3):
                await c.register(ident, {})
            return await c.multicast(None, b"x")

    res = sim.run(body())
    assert res.statuses == {"d000": DELIVERED, "d001": DELIVERED, "d002": DELIVERED}
    times = [t for _, t in m.attempts["d000"]]
    assert [a for a, _ in m.attempts["d000"]] == [1, 2, 3]
    assert times[1] - times[0] == pytest_approx(0.1)
    assert times[2] - times[1] == pytest_approx(0.2)


def test_timeouts_and_failures_never_lose_the_rest(sim: SimPyRuntime) -> None:
    m = ScriptedMessaging(sim, delay=0.001, script={
        "d001": ["hang", "hang"], "d002": ["down", "down"], "d003": ["boom", "boom"],
    })
    cfg = Config(send_retries=1, send_timeout=0.5, retry_backoff=0.01)

    async def body() -> Any:
        async with Coordinator(cfg, runtime=sim, messaging=m) as c:
            for ident in fleet(6):
                await c.register(ident, {})
            return await c.multicast(None, b"x"), c

    res, c = sim.run(body())
    assert res.statuses["d001"] == TIMEOUT
    assert res.statuses["d002"] == UNAVAILABLE
    assert res.statuses["d003"] == ERROR
    assert [res.statuses[i] for i in ("d000", "d004", "d005")] == [DELIVERED] * 3
    assert (res.targeted, res.delivered, res.failed) == (6, 3, 3)
    assert c.metrics.value("multicast_registry_delivery_failures_total", status="timeout") == 1
    assert c.metrics.value("multicast_registry_delivery_failures_total", status="unavailable") == 1


def test_failed_flush_fails_the_buffered_publishes(rt: Runtime) -> None:
    m = ScriptedMessaging(rt, flush_fails=True)

    async def body() -> Any:
        async with Coordinator(runtime=rt, messaging=m) as c:
            for ident in fleet(4):
                await c.register(ident, {})
            pub = await c.multicast(None, b"x")
            ack = await c.multicast(None, b"x", mode="ack")
            return pub, ack

    pub, ack = rt.run(body())
    assert set(pub.statuses.values()) == {UNAVAILABLE} and pub.failed == 4
    assert ack.failed == 4  # no listeners in ack mode; flush is not involved


def pytest_approx(x: float) -> Any:
    import pytest

    return pytest.approx(x, abs=1e-9)


def test_retries_go_in_rounds_so_an_outage_costs_a_few_backoffs_not_one_per_target(
        sim: SimPyRuntime) -> None:
    script = {ident: ["down", "down"] for ident in fleet(50)}
    m = ScriptedMessaging(sim, script=script)
    m.capabilities = Capabilities(inline_modes=("publish", "ack"))  # one worker: per-target backoffs
    # would serialise to 50 x 0.3 s
    cfg = Config(send_retries=2, retry_backoff=0.1)

    async def body() -> Any:
        async with Coordinator(cfg, runtime=sim, messaging=m) as c:
            for ident in fleet(50):
                await c.register(ident, {})
            t0 = sim.now()
            res = await c.multicast(None, b"x")
            return res, sim.now() - t0

    res, took = sim.run(body())
    assert res.delivered == 50
    assert took == pytest_approx(0.1 + 0.2)
    assert all(lat == pytest_approx(0.3) for lat in res.latencies.values())
