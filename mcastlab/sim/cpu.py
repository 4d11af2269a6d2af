"""The coordinator process's CPU as a simulated resource: what gives out first in a live asyncio process.

A live coordinator is one asyncio process: one core's worth of CPU that every operation's client-side
work queues on — encoding a request, decoding the identities a query returns, framing each message of a
fan-out, building the result, receiving the deliveries of in-process agents, and (in a live run) the
load generator and recorder themselves. :class:`SimCpu` is that resource: an FCFS queue with ``cores``
servers (:class:`~mcastlab.sim.queue.FcfsServer`), on which every simulated backend of one process
charges service time. Registry and messaging *server* time stay on their own queues, so under load the
simulation shows which of the three saturates first, as live runs do; with ``host_cores`` (and
``registry_cpu``, ``messaging_cpu``) the three also share the machine's cores (:mod:`mcastlab.sim.host`).

Costs (seconds; a calibration file's ``sim.cpu`` section, else these defaults — measured on this
project's 2-core machine with Python 3.11, redis-py + hiredis and nats-py, see ``mcastlab calibrate``)::

    cpu:
      cores: 1                 # an asyncio process uses one core
      processes: 1             # coordinator replicas (each ``cores``), sharing the servers: see below
      call:                    # fixed client work per registry call (encode, send, parse, await)
        default: 6.0e-5
        query: 1.2e-4
        ids: 8.0e-5
        batch: 1.2e-4
      per_item:                # per row decoded (query), id decoded (ids, claim), item encoded (batch)
        query: 3.0e-6
        ids: 4.0e-7
        count: 4.0e-7
        claim: 2.0e-6
        batch: 4.0e-6
      per_message: 1.5e-6      # a fan-out: frame and buffer one message (publish) or request (ack)
      per_fanout: 4.0e-5       # a multicast's own work besides its query and messages (result, journal)
      per_delivery: 1.2e-5     # an in-process inbox agent receiving one message
      per_op: 2.5e-5           # the load generator scheduling and recording one operation
      per_target: 2.0e-6       # the load generator recording and auditing one target of a multicast

``processes: N`` models N coordinator replicas, each in its own process with its own ``cores``, in front
of the same registry and messaging servers: the pool of N x ``cores`` FCFS servers takes each piece of work
on whichever is free first. That is the replicas behind a least-loaded balancer — the best case; replicas
given fixed shares of a skewed load would queue more.

**An idle process is slow to wake.** A process that has been idle sleeps in ``epoll`` and its CPU drops
into a low-power state: measured on this project's VMs, the load generator's next callback runs ~0.8 ms
late after 20 ms of idleness (epoll's 1 ms timeout granularity plus the wake-up), ~0.5 ms after 0.5 ms.
``timer`` (written by ``mcastlab calibrate``) is that lateness by idle gap, as quantiles (0, 5, ..., 100 %)
per measured gap (a :class:`~mcastlab.sim.models.GapTable`)::

    cpu:
      timer: {gaps: [0.0005, 0.002, 0.005, 0.02, 0.05], quantiles: [[...21 values...], ...]}

The workload scheduler adds it after each idle sleep, so a simulated run has the generator lag a live
one has. (The registry server's own wake-up is ``registry.wake`` in :mod:`mcastlab.sim.spec`.) Without a
calibration file there is no such delay.

Waking also costs CPU: measured here, a register issued after the process slept 0.5 / 2 / 5 / 20 ms
uses ~0.1 / 0.15 / 0.25 / 0.5 ms more process CPU than one issued back to back (the timer's own wake-up,
then the interpreter running from cold caches on a core that was idle or busy with other processes).
At 100 req/s that puts a live coordinator at ~3x the CPU per operation its back-to-back calibration
adds up to; under load the process seldom sleeps and the extra fades. ``wake_cpu`` (written by
``mcastlab calibrate``: the extra CPU of a register after each gap) is charged to the CPU when the load
generator wakes from an idle sleep, by how long the CPU was idle (a
:class:`~mcastlab.sim.models.WakeCurve`); a process kept busy fires its timers without sleeping and pays
nothing. Waits for a reply inside an operation are not charged: the back-to-back timings the other costs
come from already contain them (and a socket wake-up is cheaper than a timer's)::

    cpu:
      wake_cpu: {gaps: [0.0005, 0.002, 0.005, 0.02, 0.05], seconds: [1.0e-4, ...]}

Larger operations pay more live than a register does (a multicast to 200 ~1 ms after 10 ms idle); the
curve is the register's, the commonest operation, and so an approximation for the others.

Work is admitted when it is known: an operation's request-side work at its start, its decode work when
its reply arrives (``charge`` may be given a time in the future). Admission follows the calls, not
strictly the instants, so work admitted for a later instant can delay work of an earlier one by up to
that gap (a round trip): a small, stated approximation that keeps one SimPy event per operation.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcastlab.errors import ConfigError
from mcastlab.sim.host import SimHost
from mcastlab.sim.models import GapSampler, GapTable, WakeCurve
from mcastlab.sim.queue import FcfsServer

CALL_OPS = ("default", "register", "heartbeat", "unregister", "get", "query", "ids", "count", "claim",
            "next_deadline", "batch")
CPU_DEFAULTS: dict[str, Any] = {
    "cores": 1,
    "processes": 1,
    "call": {"default": 6.0e-5, "query": 1.2e-4, "ids": 8.0e-5, "batch": 1.2e-4},
    "per_item": {"query": 3.0e-6, "ids": 4.0e-7, "count": 4.0e-7, "claim": 2.0e-6, "batch": 4.0e-6},
    "per_message": 1.5e-6,
    "per_fanout": 4.0e-5,
    "per_delivery": 1.2e-5,
    "per_op": 2.5e-5,
    "per_target": 2.0e-6,
}
_KEYS = (*CPU_DEFAULTS, "timer", "wake_cpu", "host_cores", "registry_cpu", "messaging_cpu")


def _seconds(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"{path} must be a finite number of seconds >= 0, got {v!r}", key=path)
    return float(v)


def _table(d: Any, path: str) -> dict[str, float]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{path} must be a mapping of operation -> seconds, got {d!r:.60}", key=path)
    out = {}
    for op, v in d.items():
        if op not in CALL_OPS:
            close = difflib.get_close_matches(str(op), CALL_OPS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown operation {path}.{op}{hint}; known: {', '.join(CALL_OPS)}",
                              key=f"{path}.{op}")
        out[str(op)] = _seconds(v, f"{path}.{op}")
    return out


@dataclass(frozen=True)
class CpuSpec:
    """Client-side CPU costs of one coordinator process (see the module docstring)."""

    cores: int = 1
    processes: int = 1
    call: Mapping[str, float] = field(default_factory=lambda: dict(CPU_DEFAULTS["call"]))
    per_item: Mapping[str, float] = field(default_factory=lambda: dict(CPU_DEFAULTS["per_item"]))
    per_message: float = CPU_DEFAULTS["per_message"]
    per_fanout: float = CPU_DEFAULTS["per_fanout"]
    per_delivery: float = CPU_DEFAULTS["per_delivery"]
    per_op: float = CPU_DEFAULTS["per_op"]
    per_target: float = CPU_DEFAULTS["per_target"]
    timer: GapTable | None = None
    wake_cpu: WakeCurve | None = None  # extra CPU of the first work after an idle gap
    host_cores: int | None = None  # the machine's cores, shared with the servers (mcastlab.sim.host)
    registry_cpu: float = 1.0  # registry server: process CPU seconds per second of service
    messaging_cpu: float = 0.0  # messaging server: process CPU seconds per message

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, path: str = "cpu") -> CpuSpec:
        """Build from data (unknown keys refused, naming the closest known key)."""
        d = dict(d or {})
        for k in d:
            if k not in _KEYS:
                close = difflib.get_close_matches(str(k), _KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown key {path}.{k}{hint}; known keys: {', '.join(_KEYS)}",
                                  key=f"{path}.{k}")
        cores, processes = d.get("cores", 1), d.get("processes", 1)
        for key, v in (("cores", cores), ("processes", processes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{path}.{key} must be an int >= 1, got {v!r}", key=f"{path}.{key}")
        call = {**CPU_DEFAULTS["call"], **_table(d.get("call", {}), f"{path}.call")}
        item = {**CPU_DEFAULTS["per_item"], **_table(d.get("per_item", {}), f"{path}.per_item")}
        scalars = {k: _seconds(d.get(k, CPU_DEFAULTS[k]), f"{path}.{k}")
                   for k in ("per_message", "per_fanout", "per_delivery", "per_op", "per_target")}
        host = d.get("host_cores")
        if host is not None and (isinstance(host, bool) or not isinstance(host, int) or host < 1):
            raise ConfigError(f"{path}.host_cores must be an int >= 1 (the machine's cores) or absent, got "
                              f"{host!r}", key=f"{path}.host_cores")
        reg_cpu = d.get("registry_cpu", 1.0)
        if isinstance(reg_cpu, bool) or not isinstance(reg_cpu, int | float) or not 0 < reg_cpu < 1e3:
            raise ConfigError(f"{path}.registry_cpu must be Redis' process CPU per second of command time, a "
                              f"number > 0 (about 1), got {reg_cpu!r}", key=f"{path}.registry_cpu")
        msg_cpu = _seconds(d.get("messaging_cpu", 0.0), f"{path}.messaging_cpu")
        return cls(cores, processes, call, item, **scalars,
                   timer=GapTable.from_dict(d.get("timer"), f"{path}.timer"),
                   wake_cpu=WakeCurve.from_dict(d.get("wake_cpu"), f"{path}.wake_cpu"), host_cores=host,
                   registry_cpu=float(reg_cpu), messaging_cpu=msg_cpu)

    @classmethod
    def off(cls) -> CpuSpec:
        """No client CPU cost at all (``cpu: off`` in a spec): the model of before the CPU model, for
        tests that check exact latencies."""
        zero = dict.fromkeys(CALL_OPS, 0.0)
        return cls(1, 1, zero, dict(zero), 0.0, 0.0, 0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "processes": self.processes, "call": dict(self.call),
                "per_item": dict(self.per_item),
                "per_message": self.per_message, "per_fanout": self.per_fanout,
                "per_delivery": self.per_delivery, "per_op": self.per_op, "per_target": self.per_target,
                **({"timer": self.timer.to_dict()} if self.timer is not None else {}),
                **({"wake_cpu": self.wake_cpu.to_dict()} if self.wake_cpu is not None else {}),
                **({"host_cores": self.host_cores, "registry_cpu": self.registry_cpu,
                    "messaging_cpu": self.messaging_cpu} if self.host_cores is not None else {})}


class SimCpu:
    """One process's CPU: an FCFS queue of ``cores`` servers that backends charge work to."""

    __slots__ = ("_call", "_default", "_item", "_timer", "_wake", "host", "per_delivery", "per_fanout",
                 "per_message", "per_op", "per_target", "server", "spec")

    def __init__(self, spec: CpuSpec | None = None, rng: np.random.Generator | None = None, *,
                 on_host: bool = True) -> None:
        self.spec = spec = spec if spec is not None else CpuSpec()
        gen = rng if rng is not None else np.random.default_rng(0)
        self._timer = None if spec.timer is None else GapSampler(spec.timer, gen)
        self._wake = spec.wake_cpu
        self.server = FcfsServer(spec.cores * spec.processes)
        self.host = None if spec.host_cores is None or not on_host else SimHost(spec.host_cores)
        if self.host is not None:
            self.host.join(self.server)
        self._default = spec.call.get("default", 0.0)
        self._call = {op: spec.call.get(op, self._default) for op in CALL_OPS}
        self._item = {op: spec.per_item.get(op, 0.0) for op in CALL_OPS}
        self.per_message = spec.per_message
        self.per_fanout = spec.per_fanout
        self.per_delivery = spec.per_delivery
        self.per_op = spec.per_op
        self.per_target = spec.per_target

    def charge(self, t: float, seconds: float) -> float:
        """Queue ``seconds`` of work arriving at ``t``; return when it is done."""
        if seconds <= 0:
            return t
        server = self.server
        if self.host is not None:
            start, held = self.host.admit(server, t, seconds)
            return start + held
        if server.servers == 1:  # FcfsServer.admit, inlined for the common case
            start = server._free if server._free > t else t
            server._free = start + seconds
            server.busy += seconds
            return start + seconds
        return server.admit(t, seconds) + seconds

    def idle_for(self, t: float) -> float:
        """How long the CPU has been idle at ``t`` (<= 0: busy, or work already queued past ``t``)."""
        return t - self.server.first_free

    def wake_cost(self, t: float) -> float:
        """CPU seconds the generator's wake-up at ``t`` costs, the process having been idle until then."""
        return 0.0 if self._wake is None else self._wake(self.idle_for(t))

    def timer_lag(self, t: float) -> float:
        """How late a callback scheduled for ``t`` runs, the generator having slept through an idle gap."""
        return 0.0 if self._timer is None else self._timer(self.idle_for(t))

    @property
    def models_idle(self) -> bool:
        """True when the calibration measured the generator's idle wake-up (``timer`` or ``wake_cpu``)."""
        return self._timer is not None or self._wake is not None

    def call(self, op: str) -> float:
        """Fixed client work of one registry call of kind ``op``."""
        return self._call.get(op, self._default)

    def items(self, op: str, n: int) -> float:
        """Client work for ``n`` items of a registry call of kind ``op``."""
        return self._item.get(op, 0.0) * n if n else 0.0


__all__ = ["CALL_OPS", "CPU_DEFAULTS", "CpuSpec", "SimCpu"]
