"""Crash test: a coordinator process is SIGKILLed mid-fan-out; after a restart, replay loses nothing.

The child registers 10 identities, completes one multicast to 3 of them, then multicasts to all 10
through a messaging backend that stalls forever after 4 more sends. The parent waits until the child
has persisted the second multicast and made those 4 sends, kills it with SIGKILL, then replays for
every identity from a fresh coordinator.
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
from mcastlab.backends import DELIVERED, PostgresDurability, SqliteDurability

from .conftest import unique

N, FIRST, STALL_AFTER = 10, 3, 7  # identities; targets of the first multicast; sends before stalling

CHILD = textwrap.dedent('''
    import asyncio, json, os, sys
    from mcastlab import Config, Coordinator
    from mcastlab.backends import Capabilities, PostgresDurability, SqliteDurability

    kind, target, prefix, log_path, n, first, stall_after = sys.argv[1:8]
    n, first, stall_after = int(n), int(first), int(stall_after)

    class StallingMessaging:
        """Accepts ``stall_after`` sends (logged to a file), then blocks forever."""
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
        dur = SqliteDurability(target) if kind == "sqlite" else PostgresDurability(target, prefix=prefix)
        cfg = Config(max_in_flight=1, default_ttl=None)
        async with Coordinator(cfg, messaging=StallingMessaging(), durability=dur) as c:
            for i in range(n):
                await c.register(f"dev-{i}", {"first": i < first})
            await c.multicast({"first": True}, b"first")
            await c.multicast(None, b"second")

    asyncio.run(main())
''')


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def sent(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines() if line.endswith("]")]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.live)])
def durability(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "durable.db"), "mcast"
    return "postgres", request.getfixturevalue("pg_server").url, unique("crash")


def make(kind: str, target: str, prefix: str) -> Any:
    return SqliteDurability(target) if kind == "sqlite" else PostgresDurability(target, prefix=prefix)


def test_sigkill_mid_fanout_then_replay_loses_nothing(durability: tuple[str, str, str],
                                                       tmp_path: Path) -> None:
    kind, target, prefix = durability
    script, log = tmp_path / "child.py", tmp_path / "sent.jsonl"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), kind, target, prefix, str(log), str(N), str(FIRST),
                              str(STALL_AFTER)], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(sent(log)) >= STALL_AFTER or child.poll() is not None, 30, "the child's sends")
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        time.sleep(0.1)  # the child is now stalled inside the fan-out of the second multicast
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log_rows = sent(log)
    first_id = log_rows[0][0]
    second_id = log_rows[-1][0]
    delivered_live = {ident for mid, ident in log_rows if mid == second_id}
    assert len(delivered_live) == STALL_AFTER - FIRST
    asyncio.run(replay_after_restart(make(kind, target, prefix), first_id, second_id, delivered_live))


async def replay_after_restart(durability: Any, first_id: str, second_id: str,
                               delivered_live: set[str]) -> None:
    """A fresh coordinator on the same store: every target gets the interrupted message back."""
    async with Coordinator(durability=durability) as c:
        assert await c.durability.statuses(first_id) == {f"dev-{i}": DELIVERED for i in range(FIRST)}
        replayed: dict[str, Any] = {}
        for i in range(N):
            got = await c.replay(f"dev-{i}")
            assert [(m.id, m.payload) for m in got] == [(second_id, b"second")]  # "first" was delivered
            replayed[f"dev-{i}"] = got[0]
        assert set(replayed) == {f"dev-{i}" for i in range(N)}  # nothing lost
        for ident in delivered_live:  # delivered before the crash and again now: flagged
            assert replayed[ident].redelivery is True
        # The crash left no outcome, so every replay is flagged (at-least-once: "may have arrived").
        assert all(m.redelivery for m in replayed.values())
        again = await c.replay("dev-9")
        assert [(m.redelivery, m.attempt) for m in again] == [(True, 3)]
        await c.durability.outcome(second_id, {"dev-9": DELIVERED}, now=0.0)  # acknowledged
        assert await c.replay("dev-9") == []
