"""Identity agents: devices, users and services that hold an inbox and record what they receive.

An agent is one coroutine (one SimPy process): it opens ``coordinator.inbox(identity)`` and loops
``await box.get()``; inboxes acknowledge on receipt, so ``ack``-mode multicasts complete when the
agent's inbox got the message. Receipts go into a :class:`DeliveryLog` of column arrays (no tuple per
row), which becomes the tidy ``deliveries`` frame. For fleets too large for a process per identity,
``SimMessaging.attach_sink(log, prefix)`` records the same rows analytically (``append_many``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mcastlab.backends.base import DELIVERED
from mcastlab.errors import UsageError

KINDS = ("device", "user", "service")
COLUMNS = ("message_id", "identity", "t_sent", "t_received", "latency_s", "status")


class DeliveryLog:
    """Column store of receipts: message_id, identity, t_sent, t_received, latency_s, status."""

    __slots__ = ("identity", "message_id", "status", "t_received", "t_sent")

    def __init__(self) -> None:
        self.message_id: list[str] = []
        self.identity: list[str] = []
        self.t_sent = array("d")
        self.t_received = array("d")
        self.status: list[str] = []

    def append(
        self, message_id: str, identity: str, t_sent: float, t_received: float, status: str = DELIVERED
    ) -> None:
        self.message_id.append(message_id)
        self.identity.append(identity)
        self.t_sent.append(t_sent)
        self.t_received.append(t_received)
        self.status.append(status)

    def append_many(self, message_id: str, identities: Sequence[str], t_sent: float,
                    t_received: np.ndarray) -> None:
        """Receipts of one message by many identities (a sink's batch delivery)."""
        n = len(identities)
        self.message_id.extend([message_id] * n)
        self.identity.extend(identities)
        self.t_sent.extend(array("d", [t_sent]) * n)
        self.t_received.frombytes(np.asarray(t_received, np.float64).tobytes())
        self.status.extend([DELIVERED] * n)

    def __len__(self) -> int:
        return len(self.t_sent)

    @property
    def latency_s(self) -> np.ndarray:
        return np.frombuffer(self.t_received, dtype=float) - np.frombuffer(self.t_sent, dtype=float)

    def to_frame(self, run: str | None = None) -> Any:
        """The ``deliveries`` frame (columns in mcastlab.measure.frames): run, message_id, identity, ..."""
        import pandas as pd

        t_sent = np.frombuffer(self.t_sent, dtype=float).copy()
        t_recv = np.frombuffer(self.t_received, dtype=float).copy()
        cols: dict[str, Any] = {}
        if run is not None:
            cols["run"] = pd.Series([run] * len(t_sent), dtype="string")
        cols.update(
            {
                "message_id": pd.Series(self.message_id, dtype="string"),
                "identity": pd.Series(self.identity, dtype="string"),
                "t_sent": t_sent,
                "t_received": t_recv,
                "latency_s": t_recv - t_sent,
                "status": pd.Series(self.status, dtype="string"),
            }
        )
        return pd.DataFrame(cols)


class Agent:
    """One identity's listener: kind, identity, messages received, and its task."""

    __slots__ = ("identity", "kind", "received", "task")

    def __init__(self, identity: str, kind: str) -> None:
        self.identity = identity
        self.kind = kind
        self.received = 0
        self.task: Any = None

    async def run(self, coordinator: Any, log: DeliveryLog) -> None:
        """Open the inbox and record every message until cancelled."""
        append, me = log.append, self.identity
        async with coordinator.inbox(me) as box:
            get = box.get
            while True:
                msg = await get()
                self.received += 1
                append(msg.id, me, msg.sent_at, msg.received_at, DELIVERED)


class AgentPool:
    """Agents started on a coordinator; ``stop()`` cancels them (their inboxes close)."""

    def __init__(self, coordinator: Any, log: DeliveryLog | None = None) -> None:
        self.coordinator = coordinator
        self.log = log if log is not None else DeliveryLog()
        self.agents: dict[str, Agent] = {}

    def start(self, identities: Iterable[str], kind: str = "device") -> list[Agent]:
        """Spawn one agent per identity (call before the multicasts they should see)."""
        if kind not in KINDS:
            raise UsageError(f"agent kind must be one of {KINDS}, got {kind!r}")
        spawn = self.coordinator.runtime.spawn
        started = []
        for ident in identities:
            if ident in self.agents:
                continue
            a = Agent(ident, kind)
            a.task = spawn(a.run(self.coordinator, self.log))
            self.agents[ident] = a
            started.append(a)
        return started

    def stop(self) -> None:
        """Cancel every agent."""
        for a in self.agents.values():
            if a.task is not None:
                a.task.cancel()
        self.agents.clear()

    def __len__(self) -> int:
        return len(self.agents)


def start_agents(
    coordinator: Any, identities: Iterable[str], *, kind: str = "device", log: DeliveryLog | None = None
) -> AgentPool:
    """Start one agent per identity on ``coordinator``; returns the pool (``pool.log`` has receipts)."""
    pool = AgentPool(coordinator, log)
    pool.start(identities, kind)
    return pool


__all__ = ["COLUMNS", "KINDS", "Agent", "AgentPool", "DeliveryLog", "start_agents"]
