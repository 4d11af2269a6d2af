"""A replica's share of a workload: which identities and which operations it issues.

Live replicas (``mcastlab run --processes N``) each run the *whole* workload plan — every callback, every
random draw, every identity created, so all of them agree on codes, names and device states — but each
issues only its share of the operations:

* an identity's operations (register, heartbeat, unregister, its agent and probe) belong to replica
  ``code % N``, so one identity's lifecycle is driven by one process, as a device talks to one replica;
* global operations (enumerate, count, multicast) are dealt round-robin in plan order: the ``k``-th
  belongs to replica ``k % N``; population samples are replica 0's.

A multicast's reaction (``then``, e.g. sensors installing the firmware they received) depends on who the
message reached, which only the sending replica knows. It is broadcast on a :class:`Bus` to every replica
(itself included), which calls the reaction its own plan registered for that multicast: the devices'
owners then act on it, and every replica's view of device states stays the same.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("mcastlab.workloads.partition")

Reaction = Callable[[float, Any, np.ndarray], None]


class Bus(Protocol):
    """Carries a multicast's reaction to every replica (the sender included)."""

    def publish(self, seq: int, t: float, codes: list[int]) -> None: ...


class Partition:
    """Replica ``index`` of ``count``; see the module docstring. ``Partition()`` is the whole workload."""

    __slots__ = ("_reactions", "_turn", "bus", "count", "index")

    def __init__(self, index: int = 0, count: int = 1, bus: Bus | None = None) -> None:
        self.index = index
        self.count = count
        self.bus = bus
        self._turn = 0
        self._reactions: dict[int, Reaction] = {}

    @property
    def whole(self) -> bool:
        """True when this process runs the whole workload (no replicas)."""
        return self.count == 1

    def owns(self, code: int) -> bool:
        """Whether this replica issues identity ``code``'s operations."""
        return self.count == 1 or code % self.count == self.index

    def take_turn(self) -> tuple[bool, int]:
        """The next global operation of the plan: (whether it is this replica's, its sequence number)."""
        seq = self._turn
        self._turn += 1
        return self.count == 1 or seq % self.count == self.index, seq

    def expect(self, seq: int, then: Reaction) -> None:
        """Remember the reaction of global operation ``seq`` until its sender broadcasts who it reached."""
        self._reactions[seq] = then

    def react(self, seq: int, t: float, codes: list[int]) -> None:
        """Run the reaction of global operation ``seq`` (broadcast by its sender) for ``codes``."""
        then = self._reactions.pop(seq, None)
        if then is None:
            log.warning("reaction %d arrived but this replica's plan has none (plans diverged?)", seq)
            return
        then(t, None, np.asarray(codes, np.int64))


class LocalBus:
    """A bus between partitions living in one process (tests, and replicas on one event loop)."""

    def __init__(self) -> None:
        self.partitions: list[Partition] = []
        self.schedule: Callable[[Callable[[], None]], None] = lambda fn: fn()

    def publish(self, seq: int, t: float, codes: list[int]) -> None:
        for p in self.partitions:
            self.schedule(functools.partial(p.react, seq, t, codes))


__all__ = ["Bus", "LocalBus", "Partition", "Reaction"]
