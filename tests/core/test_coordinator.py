"""Coordinator semantics, run under both runtimes (asyncio and SimPy) with identical expectations."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab import Config, Coordinator, ExpirationEvent, OpEvent
from mcastlab.backends import DELIVERED, NO_LISTENER, MemoryMessaging, MemoryRegistry
from mcastlab.errors import ClosedError, InboxTimeoutError, UnknownIdentityError
from mcastlab.runtime import Runtime

FLEET = {
    "dev-1": {"status": "online", "firmware_version": "1.2.9", "location": "warehouse-a"},
    "dev-2": {"status": "online", "firmware_version": "1.10.0", "location": "warehouse-a"},
    "dev-3": {"status": "offline", "firmware_version": "1.2.3", "location": "warehouse-b"},
    "dev-4": {"status": "online", "firmware_version": "1.2.10", "location": "warehouse-b"},
}


def run(rt: Runtime, fn: Any, **kw: Any) -> Any:
    async def body() -> Any:
        async with Coordinator(kw.pop("config", Config()), runtime=rt, name="c", **kw) as c:
            for ident, md in FLEET.items():
                await c.register(ident, md)
            return await fn(c)

    return rt.run(body())


def test_enumerate_count_and_filters(rt: Runtime) -> None:
    async def fn(c: Coordinator) -> Any:
        return (
            [i.id for i in await c.enumerate()],
            [i.id for i in await c.enumerate({"status": "online", "location": "warehouse-a"})],
            [i.id for i in await c.enumerate('status == "online" and firmware_version < v"1.2.10"')],
            await c.count('location in ["warehouse-b"]'),
            await c.count({"status": "nope"}),
        )

    everyone, wa, old, in_b, none = run(rt, fn)
    assert everyone == ["dev-1", "dev-2", "dev-3", "dev-4"]
    assert wa == ["dev-1", "dev-2"]
    assert old == ["dev-1"]
    assert in_b == 2
    assert none == 0


def test_register_is_an_upsert_and_unregister_is_idempotent(rt: Runtime) -> None:
    async def fn(c: Coordinator) -> Any:
        await c.register("dev-1", {"status": "offline"})
        after = await c.get("dev-1")
        online = [i.id for i in await c.enumerate({"status": "online"})]
        first = await c.unregister("dev-2")
        second = await c.unregister("dev-2")
        return after, online, first, second, await c.count()

    after, online, first, second, n = run(rt, fn)
    assert dict(after.metadata) == {"status": "offline"}
    assert online == ["dev-2", "dev-4"]  # the old index entry for dev-1 is gone
    assert (first, second) == (True, False)
    assert n == 3


def test_metadata_is_copied_and_read_only(rt: Runtime) -> None:
    md = {"status": "online", "tags": ["a"]}

    async def fn(c: Coordinator) -> Any:
        await c.register("x", md)
        md["status"] = "changed"
        got = await c.get("x")
        with pytest.raises(TypeError):
            got.metadata["status"] = "hacked"  # type: ignore[index]
        return got

    got = run(rt, fn)
    assert got.metadata["status"] == "online"


def test_multicast_publish_reaches_listening_inboxes(rt: Runtime) -> None:
    async def fn(c: Coordinator) -> Any:
        async with c.inbox("dev-1") as box1, c.inbox("dev-3") as box3:
            res = await c.multicast({"status": "online"}, b'{"command":"restart"}')
            msg = await box1.get(timeout=1)
            return res, msg, len(box3)

    res, msg, n3 = run(rt, fn)
    assert (res.targeted, res.delivered, res.failed) == (3, 3, 0)
    assert res.targeted == res.delivered + res.failed
    assert set(res.statuses) == {"dev-1", "dev-2", "dev-4"}
    assert all(lat >= 0 for lat in res.latencies.values())
    assert msg.payload == b'{"command":"restart"}'
    assert msg.id == res.message_id
    assert msg.identity == "dev-1"
    assert msg.received_at is not None and msg.latency is not None and msg.latency >= 0
    assert n3 == 0  # offline dev-3 was not targeted


def test_multicast_ack_counts_only_listeners(rt: Runtime) -> None:
    async def fn(c: Coordinator) -> Any:
        async with c.inbox("dev-2"):
            return await c.multicast('status == "online"', "hello", mode="ack")

    res = run(rt, fn)
    assert res.statuses == {"dev-1": NO_LISTENER, "dev-2": DELIVERED, "dev-4": NO_LISTENER}
    assert (res.targeted, res.delivered, res.failed) == (3, 1, 2)
    assert res.failures == {"dev-1": NO_LISTENER, "dev-4": NO_LISTENER}
    frame = res.to_frame()
    assert list(frame.columns) == ["message_id", "identity", "status", "latency_s"]
    assert len(frame) == 3


def test_multicast_to_nobody(rt: Runtime) -> None:
    res = run(rt, lambda c: c.multicast({"status": "gone"}, b"x"))
    assert (res.targeted, res.delivered, res.failed) == (0, 0, 0)


def test_inbox_get_times_out(rt: Runtime) -> None:
    async def fn(c: Coordinator) -> Any:
        async with c.inbox("dev-1") as box:
            with pytest.raises(InboxTimeoutError):
                await box.get(timeout=0.01)
            with pytest.raises(TimeoutError):  # also catchable as the builtin
                await box.get(timeout=0.01)
        return True

    assert run(rt, fn)


def test_heartbeat_refreshes_and_rejects_unknown(rt: Runtime) -> None:
    async def fn(c: Coordinator) -> Any:
        before = await c.get("dev-1")
        await rt.sleep(0.01)
        after = await c.heartbeat("dev-1", ttl=1000)
        with pytest.raises(UnknownIdentityError, match="register"):
            await c.heartbeat("nobody")
        return before, after

    before, after = run(rt, fn)
    assert after.metadata == before.metadata
    assert after.expires_at > before.expires_at


def test_close_is_idempotent_and_final(rt: Runtime) -> None:
    async def body() -> None:
        c = Coordinator(runtime=rt)
        await c.register("a", {})  # opens lazily
        await c.close()
        await c.close()
        with pytest.raises(ClosedError):
            await c.register("b", {})

    rt.run(body())


def test_two_coordinators_share_embedded_backends(rt: Runtime) -> None:
    reg, msg = MemoryRegistry(), MemoryMessaging()

    async def body() -> Any:
        async with Coordinator(runtime=rt, registry=reg, messaging=msg, name="a") as a, \
                Coordinator(runtime=rt, registry=reg, messaging=msg, name="b") as b:
            await a.register("x", {"k": 1})
            async with b.inbox("x") as box:
                res = await a.multicast({"k": 1}, b"hi")
                got = await box.get(timeout=1)
            await a.close()
            return [i.id for i in await b.enumerate()], res, got  # b still works after a closed

    ids, res, got = rt.run(body())
    assert ids == ["x"]
    assert res.delivered == 1 and got.payload == b"hi"


def test_listeners_see_every_operation(rt: Runtime) -> None:
    seen: list[OpEvent | ExpirationEvent] = []

    async def body() -> None:
        async with Coordinator(runtime=rt) as c:
            c.add_listener(seen.append)
            await c.register("a", {"s": 1})
            await c.enumerate({"s": 1})
            await c.multicast({"s": 1}, b"x")
            with pytest.raises(UnknownIdentityError):
                await c.heartbeat("zzz")

    rt.run(body())
    ops = [(e.op, e.ok) for e in seen if isinstance(e, OpEvent)]
    assert ops == [("register", True), ("enumerate", True), ("multicast", True), ("heartbeat", False)]
    mc = next(e for e in seen if isinstance(e, OpEvent) and e.op == "multicast")
    assert (mc.matched, mc.delivered, mc.failed) == (1, 1, 0)


def test_same_script_gives_identical_results_under_both_runtimes() -> None:
    """The contract of the architecture: one core, two runtimes, the same observable results."""
    import simpy

    from mcastlab.runtime import AsyncioRuntime, SimPyRuntime

    async def script(rt: Runtime) -> list[Any]:
        out: list[Any] = []
        async with Coordinator(Config(default_ttl=0.05, sweep_resolution=0.001), runtime=rt, name="c") as c:
            for i in range(20):
                await c.register(f"d{i}", {"g": i % 3, "v": f"1.{i}.0"}, ttl=None if i % 4 else 1000)
            out.append([x.id for x in await c.enumerate('g == 1 and v >= v"1.5"')])
            async with c.inbox("d4") as box:
                res = await c.multicast({"g": 1}, b"p", mode="ack")
                seq = res.message_id.rsplit("-", 1)[1]  # the id also carries the open time, which differs
                out.append((seq, res.targeted, res.delivered, sorted(res.statuses.items())))
                out.append((await box.get(timeout=1)).payload)
            await rt.sleep(0.2)  # the 0.05 s identities expire
            out.append([x.id for x in await c.enumerate()])
            out.append(c.expired_total)
        return out

    live = AsyncioRuntime()
    sim = SimPyRuntime(simpy.Environment())
    assert live.run(script(live)) == sim.run(script(sim))
