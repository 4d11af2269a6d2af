"""The client's pipeline lanes as a simulated resource: why a live Redis run queues before Redis is busy.

A live :class:`~mcastlab.backends.redis_registry.RedisRegistry` sends every command through an
auto-pipeline with a few *lanes* (2 by default), each one connection that takes everything queued so
far, sends it as one pipeline and then reads the replies one by one — on the coordinator's event loop,
behind whatever else that loop has to do. A lane is busy from the moment it takes a batch until it has
read the batch's last reply, so its cycle holds server time *and* client time; commands that arrive
while every lane is busy wait for the next free lane, together (they form its next batch).

Measured on this project's 2-core VM, the reference load test at 400 req/s: from about 10 s in, the
register, enumerate and multicast calls all wait the same (the common queue of the pipeline) while
redis-server is 70-80 % busy, the coordinator ~50 % and neither waits on a run queue
(``/proc/PID/schedstat``) — the lanes alternate between Redis and the busy event loop and neither resource
is ever saturated, yet the queue diverges. :class:`Lanes` models that: a command is *dispatched* when a
lane takes it; its lane stays busy until the coordinator's CPU has read its reply
(``cpu.read_item`` per item, queued on :class:`~mcastlab.sim.cpu.SimCpu`). Replies resolve one by one, as
the live reader does, so a command completes at its own position in its batch.

``registry.lanes: null`` (the default without a calibration file) keeps one independent connection per
call, as before; ``mcastlab calibrate`` writes the live registry's lane count.
"""

from __future__ import annotations

import heapq


class Lanes:
    """``n`` pipeline lanes: when each is free, and the batch the next free lane will take."""

    __slots__ = ("_batch_at", "_batch_end", "_free", "batches", "busy", "commands", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._free = [0.0] * n  # heap: when each lane not holding the open batch is free
        self._batch_at: float | None = None  # dispatch time of the open batch (commands still join it)
        self._batch_end = 0.0  # when the open batch's lane is free again (its last reply read)
        self.batches = 0
        self.commands = 0
        self.busy = 0.0  # lane-seconds of the batches that have left (see busy_s)

    def dispatch(self, t: float) -> float:
        """A command queued at ``t``: return when a lane sends it (``t`` itself if a lane is idle)."""
        self.commands += 1
        at = self._batch_at
        if at is not None:
            if t <= at:  # every lane is busy until ``at``: the command joins the batch sent then
                return at
            heapq.heappush(self._free, self._batch_end)  # the open batch is gone: its lane is busy
            self.busy += self._batch_end - at
        free = heapq.heappop(self._free)
        self._batch_at = at = free if free > t else t
        self._batch_end = at
        self.batches += 1
        return at

    def hold(self, until: float) -> None:
        """The open batch's lane reads a reply until ``until``: it is busy at least that long."""
        if until > self._batch_end:
            self._batch_end = until

    @property
    def busy_s(self) -> float:
        """Lane-seconds spent sending batches and reading their replies so far (the open batch too)."""
        at = self._batch_at
        return self.busy + (self._batch_end - at if at is not None else 0.0)

    @property
    def free_at(self) -> float:
        """When every lane has read every reply it was sent."""
        return max([*self._free, self._batch_end])


__all__ = ["Lanes"]
