"""Lost-write detection for :class:`~mcastlab.backends.RedisClusterRegistry`.

Redis replicates asynchronously: a master acknowledges a write before its replica has it, so when the
master dies and the replica takes over, the last writes it acknowledged can be gone. Nothing in Redis
reports that; this watch does.

* Every acknowledged write (register, heartbeat, unregister) is *noted* under the master that acknowledged
  it, in that node's open batch.
* Every ``interval`` the watch asks each such master ``ROLE``: its replication offset ``M`` and the offsets
  its replicas have acknowledged. The open batch is closed with offset ``M`` — every write in it was
  acknowledged before ``ROLE`` was sent, so it sits at or below ``M`` in the replication stream — and
  every closed batch whose ``M`` is at or below the *smallest* replica offset is confirmed and forgotten
  (replicas report their offset about once a second, so a write stays unconfirmed for one to two seconds).
  A master without replicas cannot fail over: its batches are forgotten too.
* When a node fails a command (unreachable, timeout, a ``MOVED`` away from it) or ``ROLE`` shows it is no
  longer a master, its unconfirmed writes become *suspect*. Once the cluster answers again, each suspect
  write is re-read from the slot's current master and compared with what was acknowledged; the ones the
  new master lacks are counted in ``lost_writes`` and listed in ``lost`` (``(op, identity)``), and a
  warning is logged. A verification that cannot run yet (cluster still down) is retried next interval.

What "lacks" means per operation is the registry's (``verify`` callback). Limits: a write that another
client overwrote or removed before the check counts as not lost; a master restarted *empty* before any
failover loses its replicated writes too, and only the unconfirmed ones are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcastlab.backends._redis_cluster import Addr, ClusterClient

log = logging.getLogger("mcastlab.backends.redis_cluster")

# (op, shard, encoded member, stamp, extra): op "u" register (stamp = registered_at, extra = expires_at),
# "t" heartbeat (stamp = new expires_at), "d" unregister (stamp = the time it was removed)
Entry = tuple[str, int, str, float | None, float | None]


@dataclass
class _Node:
    open: list[Entry] = field(default_factory=list)
    closed: deque[tuple[int, list[Entry]]] = field(default_factory=deque)  # (offset M, writes)

    def __len__(self) -> int:
        return len(self.open) + sum(len(b) for _, b in self.closed)

    def take(self) -> list[Entry]:
        out = [e for _, batch in self.closed for e in batch] + self.open
        self.open, self.closed = [], deque()
        return out


class ReplicationWatch:
    """Counts acknowledged writes lost in a failover; see the module docstring."""

    def __init__(self, client: ClusterClient, verify: Callable[[list[Entry]], Awaitable[list[Entry]]], *,
                 interval: float = 0.25, cap: int = 2_000_000) -> None:
        self._client = client
        self._verify = verify
        self.interval = interval
        self._cap = cap  # unconfirmed writes kept per node; beyond it the oldest are dropped (and counted)
        self._nodes: dict[Addr, _Node] = {}
        self._suspects: dict[Addr, list[Entry]] = {}
        self._task: asyncio.Task[None] | None = None
        self._checking: asyncio.Lock | None = None  # one check at a time (made on the running loop)
        self.lost_writes = 0
        self.lost: deque[tuple[str, str]] = deque(maxlen=10_000)
        self.verified = 0  # suspect writes re-read after a failover
        self.dropped = 0  # unconfirmed writes forgotten because a node kept more than ``cap``
        client.on_suspect.append(self.suspect)

    # ------------------------------------------------------------------ recording
    def note(self, slot: int, entry: Entry) -> None:
        """An acknowledged write on ``slot`` (its current master acknowledged it)."""
        addr = self._client.node_for(slot)
        node = self._nodes.get(addr)
        if node is None:
            node = self._nodes[addr] = _Node()
        node.open.append(entry)
        if len(node.open) > self._cap:
            del node.open[: len(node.open) // 2]
            self.dropped += self._cap // 2

    def suspect(self, addr: Addr) -> None:
        """``addr`` failed: its unconfirmed writes must be re-read once the cluster answers."""
        node = self._nodes.pop(addr, None)
        if node is not None and len(node):
            self._suspects.setdefault(addr, []).extend(node.take())

    @property
    def unconfirmed(self) -> int:
        """Acknowledged writes not yet known to be on a replica (or verified)."""
        return sum(len(n) for n in self._nodes.values()) + sum(len(v) for v in self._suspects.values())

    # ------------------------------------------------------------------ checking
    def start(self) -> None:
        """Run :meth:`check` every ``interval`` until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(Exception):  # a cluster still down: try again next interval
                await self.check()

    async def check(self) -> int:
        """Confirm replicated writes, verify suspect ones now; returns ``lost_writes`` so far."""
        if self._checking is None:
            self._checking = asyncio.Lock()  # a caller waits for a verification already in progress
        async with self._checking:
            return await self._check()

    async def _check(self) -> int:
        await self._confirm()
        if self._suspects:
            suspects, self._suspects = self._suspects, {}
            entries = [e for batch in suspects.values() for e in batch]
            try:
                missing = await self._verify(entries)
            except BaseException:
                for addr, batch in suspects.items():  # not checked: keep them for the next try
                    self._suspects.setdefault(addr, []).extend(batch)
                raise
            self.verified += len(entries)
            if missing:
                self.lost_writes += len(missing)
                self.lost.extend((op, member) for op, _, member, _, _ in missing)
                log.warning("Redis Cluster failover of %s lost %d acknowledged write(s), e.g. %s",
                            ", ".join(f"{h}:{p}" for h, p in suspects), len(missing), missing[:3])
        return self.lost_writes

    async def _confirm(self) -> None:
        busy = [(addr, node) for addr, node in self._nodes.items() if len(node)]
        if not busy:
            return
        for _, node in busy:  # close the open batches *before* asking: their writes are all acknowledged
            node.closed.append((-1, node.open))
            node.open = []
        replies = await asyncio.gather(*(self._client.pipe(addr).call("ROLE") for addr, _ in busy),
                                       return_exceptions=True)
        for (addr, node), reply in zip(busy, replies, strict=True):
            if isinstance(reply, BaseException) or _s(reply[0]) != "master":
                self.suspect(addr)  # unreachable, or demoted: whatever it had not replicated is in doubt
                continue
            offset = int(reply[1])
            last, batch = node.closed.pop()
            node.closed.append((offset if last < 0 else last, batch))
            acked = [int(r[2]) for r in reply[2]] if reply[2] else []
            safe = min(acked) if acked else None  # no replica: nothing can fail over, nothing to lose here
            while node.closed and (safe is None or node.closed[0][0] <= safe):
                node.closed.popleft()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["Entry", "ReplicationWatch"]
