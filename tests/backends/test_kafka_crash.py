"""Crash test on the Kafka journal: a coordinator process is SIGKILLed mid-fan-out; a fresh coordinator
on the same broker (Tansu, a Kafka-protocol broker started here, or ``$KAFKA_BOOTSTRAP``) replays every
target of the interrupted multicast — nothing lost — and flags each replay as a possible redelivery.

The child journals to KafkaDurability and fans out through a messaging backend that logs each send to a
file and stalls forever after ``STALL_AFTER`` sends, so the kill lands inside the second fan-out.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mcastlab import Coordinator
from mcastlab.backends import DELIVERED, KafkaDurability

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

N, FIRST, STALL_AFTER = 10, 3, 7  # identities; targets of the first multicast; sends before stalling

CHILD = textwrap.dedent('''
    import asyncio, json, os, sys
    from mcastlab import Config, Coordinator
    from mcastlab.backends import Capabilities, KafkaDurability

    bootstrap, topic, log_path, n, first, stall_after = sys.argv[1:7]
    n, first, stall_after = int(n), int(first), int(stall_after)

    class StallingMessaging:
        name = "stalling"
        modes = ("publish", "ack")
        capabilities = Capabilities(self_timed=True)

        def __init__(self):
            self.sent = 0
            self.log = open(log_path, "a")

        async def open(self, runtime): pass
        async def close(self): pass
        async def flush(self, timeout, *, message_id=None): pass
        def inbox(self, identity): raise NotImplementedError

        async def send(self, message, *, mode, timeout):
            if self.sent >= stall_after:
                await asyncio.Event().wait()
            self.sent += 1
            self.log.write(json.dumps([message.id, message.identity]) + "\\n")
            self.log.flush()
            os.fsync(self.log.fileno())

    async def main():
        cfg = Config(max_in_flight=1, default_ttl=None)
        dur = KafkaDurability(bootstrap, topic=topic)
        async with Coordinator(cfg, messaging=StallingMessaging(), durability=dur) as c:
            for i in range(n):
                await c.register(f"dev-{i}", {"first": i < first})
            await c.multicast({"first": True}, b"first")
            await c.multicast(None, b"second")

    asyncio.run(main())
''')


def sent(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines() if line.endswith("]")]


def test_sigkill_mid_fanout_then_replay_loses_nothing(kafka_bootstrap: str, topic_prefix: str,
                                                       tmp_path: Path) -> None:
    script, log, topic = tmp_path / "child.py", tmp_path / "sent.jsonl", f"{topic_prefix}.journal"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), kafka_bootstrap, topic, str(log), str(N),
                              str(FIRST), str(STALL_AFTER)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(sent(log)) < STALL_AFTER and child.poll() is None:
            assert time.monotonic() < deadline, "timed out waiting for the child's sends"
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        time.sleep(0.1)  # the child is now stalled inside the fan-out of the second multicast
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    rows = sent(log)
    first_id, second_id = rows[0][0], rows[-1][0]
    delivered_live = {ident for mid, ident in rows if mid == second_id}
    assert len(delivered_live) == STALL_AFTER - FIRST
    asyncio.run(replay_after_restart(KafkaDurability(kafka_bootstrap, topic=topic), first_id, second_id,
                                     delivered_live))


async def replay_after_restart(durability: Any, first_id: str, second_id: str,
                               delivered_live: set[str]) -> None:
    """A fresh coordinator on the same journal: every target gets the interrupted message back."""
    async with Coordinator(durability=durability) as c:
        assert await c.durability.statuses(first_id) == {f"dev-{i}": DELIVERED for i in range(FIRST)}
        assert await c.durability.statuses(second_id) == {f"dev-{i}": "pending" for i in range(N)}
        replayed: dict[str, Any] = {}
        for i in range(N):
            got = await c.replay(f"dev-{i}")
            assert [(m.id, m.payload) for m in got] == [(second_id, b"second")]  # "first" was delivered
            replayed[f"dev-{i}"] = got[0]
        assert set(replayed) == {f"dev-{i}" for i in range(N)}  # nothing lost
        for ident in delivered_live:  # delivered before the crash and again now: flagged
            assert replayed[ident].redelivery is True
        assert all(m.redelivery for m in replayed.values())  # no outcome was journaled: all "may have"
        again = await c.replay("dev-9")
        assert [(m.redelivery, m.attempt) for m in again] == [(True, 3)]
        await c.durability.outcome(second_id, {"dev-9": DELIVERED}, now=0.0)  # acknowledged
        assert await c.replay("dev-9") == []
