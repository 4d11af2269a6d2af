"""Failure shapes usable in any scenario (``faults:`` list).

* ``outage`` — for ``duration`` seconds from ``at``, the ``target`` is unreachable: ``devices`` (the
  devices' network: their heartbeats and registers are not sent), ``registry`` or ``messaging`` (the
  server: a fault of the simulated backend in sim; in live the local server is paused with SIGSTOP).
  When it ends every cut-off device reconnects — re-registers — within ``reconnect_spread`` seconds:
  the reconnect storm. A messaging outage cuts every online device off (its subscription dropped).
* ``expiry_avalanche`` — boot-synchronised TTLs: at ``at`` a ``fraction`` of the online devices reboot
  in the same instant, so their registrations (and, with ``jitter`` 0, all later heartbeats) share one
  deadline; with ``die_after`` they lose power together that many seconds later, and all their TTLs
  expire at once ``ttl`` seconds after their last heartbeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mcastlab.workloads._schema import fail, join, parse, spec
from mcastlab.workloads.context import Context

log = logging.getLogger("mcastlab.workloads.faults")


@dataclass(frozen=True, slots=True)
class Outage:
    """A window in which devices, the registry or the messaging server cannot be reached."""

    kind: Literal["outage"]
    at: float = spec(doc="start, seconds from the run start", min=0)
    duration: float = spec(doc="seconds", gt=0)
    target: Literal["devices", "registry", "messaging"] = spec("devices", doc="what is unreachable")
    reconnect_spread: float = spec(0.0, doc="seconds over which cut-off devices reconnect", min=0)

    def sim_fault(self) -> dict[str, Any] | None:
        """The equivalent fault of the simulated backends (``sim.faults`` entry), if any."""
        if self.target == "devices":
            return None
        return {"target": self.target, "kind": "outage", "start": self.at, "duration": self.duration}

    def setup(self, ctx: Context) -> None:
        """Schedule the outage and the reconnect storm at its end."""
        ctx.at(self.at, self._begin, ctx)
        ctx.at(self.at + self.duration, self._end, ctx)

    def _begin(self, t: float, ctx: Context) -> None:
        if self.target == "devices":
            ctx.blocked_until = max(ctx.blocked_until, t + self.duration)
        elif self.target == "messaging":
            ctx.cut_off(ctx.online())

    def _end(self, t: float, ctx: Context) -> None:
        ctx.reconnect_cut(t, self.reconnect_spread, ctx.rng(f"reconnect@{self.at}"))

    def live_servers(self, started: Mapping[str, Any], clusters: Mapping[str, Any]) -> list[Any]:
        """The local server processes a live run pauses for this outage: the registry's or the messaging
        server, or every node of its cluster (a whole-cluster outage); [] for devices or remote servers."""
        if self.target == "devices":
            return []
        kind = "redis" if self.target == "registry" else "nats"
        if kind in started:
            return [started[kind]]
        cluster = clusters.get(f"{kind}-cluster")
        return list(cluster.nodes) if cluster is not None else []


def server_pauses(faults: Sequence[Any], started: Mapping[str, Any],
                  clusters: Mapping[str, Any]) -> list[tuple[float, Callable[[], Any]]]:
    """The live actions of the registry / messaging outages among ``faults``: ``(at, pause)`` and
    ``(at + duration, resume)`` for each local server they stop; an outage with nothing local to pause
    is logged (it is not applied). The caller schedules them on its own clock."""
    actions: list[tuple[float, Callable[[], Any]]] = []
    for fault in faults:
        if isinstance(fault, Outage) and fault.target != "devices":
            paused = fault.live_servers(started, clusters)
            if not paused:
                log.warning("outage of the %s: no local server to pause (not applied)", fault.target)
            for server in paused:
                actions += [(fault.at, server.pause), (fault.at + fault.duration, server.resume)]
    return actions


@dataclass(frozen=True, slots=True)
class ExpiryAvalanche:
    """Boot-synchronised TTLs: a fraction of devices reboot together (and optionally die together)."""

    kind: Literal["expiry_avalanche"]
    at: float = spec(doc="instant of the synchronised boot", min=0)
    fraction: float = spec(1.0, doc="fraction of online devices", gt=0, max=1)
    die_after: float | None = spec(None, doc="seconds after the boot at which they all die", gt=0)
    jitter: float = spec(0.0, doc="heartbeat jitter after the boot (0: phase-locked)", min=0, max=1)

    def sim_fault(self) -> dict[str, Any] | None:
        return None

    def setup(self, ctx: Context) -> None:
        """Schedule the synchronised boot."""
        ctx.at(self.at, self._boot, ctx)

    def _boot(self, t: float, ctx: Context) -> None:
        online = ctx.online()
        if not len(online):
            return
        rng = ctx.rng(f"avalanche@{self.at}")
        k = max(1, round(self.fraction * len(online)))
        chosen = np.sort(rng.choice(online, size=k, replace=False))
        ctx.boot_together(t, chosen, jitter=self.jitter, stream="synchronised-boot")
        if self.die_after is not None:
            ctx.at(t + self.die_after, lambda t_die: ctx.kill_many(t_die, chosen))


FAULT_KINDS: dict[str, type] = {"outage": Outage, "expiry_avalanche": ExpiryAvalanche}


def parse_fault(value: Any, *, key: str, source: str) -> Outage | ExpiryAvalanche:
    """One ``faults:`` entry, dispatched on its ``kind``."""
    if not isinstance(value, dict):
        fail(
            source,
            key,
            f"expected a mapping with a 'kind', got {value!r:.60}",
            f"write e.g. '- {{kind: outage, at: 600, duration: 30}}'; kinds: {', '.join(FAULT_KINDS)}",
        )
    kind = value.get("kind")
    cls = FAULT_KINDS.get(kind) if isinstance(kind, str) else None  # a list or dict is not even hashable
    if cls is None:
        fail(
            source, join(key, "kind"), f"unknown fault kind {kind!r}", f"use one of {', '.join(FAULT_KINDS)}"
        )
    return parse(cls, value, key=key, source=source)  # type: ignore[no-any-return]


__all__ = ["FAULT_KINDS", "ExpiryAvalanche", "Outage", "parse_fault", "server_pauses"]
