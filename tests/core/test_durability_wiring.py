"""The coordinator's durability wiring: persist before fan-out, replay what was missed, ack stops it."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import SqliteDurability
from mcastlab.errors import UnsupportedError, UsageError
from mcastlab.runtime import Runtime, SimPyRuntime


def test_replay_offers_missed_messages_until_acked(rt: Runtime) -> None:
    async def body() -> Any:
        async with Coordinator(Config(max_in_flight=2), runtime=rt, durability=SqliteDurability()) as c:
            for i in range(5):
                await c.register(f"d{i}", {"g": 1})
            async with c.inbox("d0"), c.inbox("d1"):
                res = await c.multicast({"g": 1}, b"update", mode="ack")
            missed = {i: await c.replay(f"d{i}") for i in range(5)}
            await c.ack("d2", [m.id for m in missed[2]])
            again = await c.replay("d2"), await c.replay("d3")
            return res, missed, again

    res, missed, (d2_again, d3_again) = rt.run(body())
    assert (res.delivered, res.failed) == (2, 3)
    assert [len(missed[i]) for i in range(5)] == [0, 0, 1, 1, 1]
    msg = missed[3][0]
    assert (msg.id, msg.payload, msg.identity) == (res.message_id, b"update", "d3")
    assert d2_again == []
    assert len(d3_again) == 1 and d3_again[0].redelivery


def test_replay_and_ack_need_durability_and_valid_ids(sim: SimPyRuntime) -> None:
    async def body() -> None:
        async with Coordinator(runtime=sim) as c:
            with pytest.raises(UnsupportedError, match="durability backend"):
                await c.replay("d0")
            with pytest.raises(UnsupportedError, match="durability backend"):
                await c.ack("d0", ["m"])
        async with Coordinator(runtime=sim, durability=SqliteDurability()) as c:
            for bad in ([1, 2], 5, None, [""]):
                with pytest.raises(UsageError, match="message id"):
                    await c.ack("d0", bad)
            for since in ("yesterday", None, float("nan")):
                with pytest.raises(UsageError, match="since must be"):
                    await c.replay("d0", since=since)

    sim.run(body())
