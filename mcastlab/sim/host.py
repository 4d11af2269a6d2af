"""The machine's cores as a simulated resource, shared by the processes that run on it.

Live, the coordinator, Redis and nats-server of a run on one machine share its cores. On this project's 2-core
VMs, at the end of a 450 req/s load test the three used 0.5-0.6, 0.6-0.8 and 0.3-0.4 cores and each waited for
a core 0.1-0.2 s (coordinator), 0.05-0.13 s (Redis) and 0.2-0.4 s (nats-server) per second
(``/proc/PID/schedstat``): the host, not any one process, ran out first. Without a host every simulated
process has its own cores and the simulation cannot show that.

:class:`SimHost` is ``cores`` cores shared by the members' FCFS servers (:class:`~mcastlab.sim.queue.
FcfsServer`), in the manner of processor sharing: work that starts at ``t`` runs ``max(1, wanted / cores)``
times longer than its CPU time, where ``wanted`` is the cores asked for at ``t`` — the work itself plus every
member server busy at ``t``, each weighing the cores it burns while busy (``cpu_per_s``: 1 for the
coordinator; Redis' process CPU per second of command time for the registry server). The stretch is fixed when
the work starts: a member that becomes busy later does not slow work already running (a stated approximation
that keeps one computation per admission). A member counts as busy at ``t`` only inside work it was admitted
for (intervals, searched by bisection): work queued to start later does not make it busy now. Service time
counted as busy stays the CPU time, comparable with a live run's process CPU seconds; the stretch only delays.

The messaging server is different: nats-server is multi-threaded and burns about a microsecond of CPU per
message while its modelled serial service is far shorter, so its CPU is charged to a member of its own
(:meth:`SimHost.process`) per message sent, which occupies cores without delaying the messages.

The host is the machine the calibration measured, running one coordinator process, one Redis and one
nats-server. A scaled-out simulation (``cpu.processes``, ``cpu.cores``, ``registry.shards`` or
``registry.servers`` above 1), or one with Kafka-like messaging (whose broker's CPU is not measured), stands
for a deployment whose cores were not measured: there every process keeps cores of its own, as without a host.

Configured by the calibration's ``sim.cpu`` section (``mcastlab calibrate`` measures all three)::

    cpu:
      host_cores: 2             # cores of the machine the processes share; absent or null: no host
      registry_cpu: 1.15        # Redis process CPU seconds per second of command time
      messaging_cpu: 1.0e-6     # nats-server process CPU seconds per message
"""

from __future__ import annotations

from bisect import bisect_right

from mcastlab.errors import ConfigError, RuntimeMisuseError, UnsupportedError
from mcastlab.sim.queue import FcfsServer

_KEEP = 4096  # intervals kept per member before the oldest half may be forgotten
_MARGIN = 1.0  # seconds: work admitted for an instant never lies further back than this behind new work


class _Member:
    """A member server's admitted work as intervals, in admission order (FCFS on one server: starts
    never decrease), so "busy at t" is a binary search and work queued for later is not busy now."""

    __slots__ = ("cpu_per_s", "ends", "starts")

    def __init__(self, cpu_per_s: float) -> None:
        self.cpu_per_s = cpu_per_s
        self.starts: list[float] = []
        self.ends: list[float] = []

    def busy_at(self, t: float) -> bool:
        k = bisect_right(self.starts, t) - 1
        return k >= 0 and self.ends[k] > t

    def add(self, start: float, end: float) -> None:
        starts, ends = self.starts, self.ends
        if len(starts) >= _KEEP and ends[_KEEP // 2] < start - _MARGIN:  # forget work long finished
            del starts[: _KEEP // 2], ends[: _KEEP // 2]
        starts.append(start)
        ends.append(end)


class SimHost:
    """``cores`` cores shared by member FCFS servers (see the module docstring)."""

    __slots__ = ("_members", "cores", "waited")

    def __init__(self, cores: int) -> None:
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise ConfigError(f"a host needs an int >= 1 of cores, got {cores!r}", key="cpu.host_cores")
        self.cores = cores
        self._members: dict[FcfsServer, _Member] = {}
        self.waited = 0.0  # total seconds work ran longer than its CPU time: the waits for a core

    def join(self, server: FcfsServer, cpu_per_s: float = 1.0) -> None:
        """Make ``server``'s work share this host's cores; busy, it burns ``cpu_per_s`` cores."""
        if server.servers != 1:
            raise UnsupportedError(f"a host models single-server members; this one has {server.servers} "
                                   "servers (simulate scaled-out deployments without cpu.host_cores)")
        if not 0 < cpu_per_s < 1e3:
            raise ConfigError(f"cores a busy member burns must be > 0, got {cpu_per_s!r}")
        self._members[server] = _Member(cpu_per_s)

    def stretch(self, t: float, cpu_per_s: float = 1.0) -> float:
        """How many times its CPU time work takes that starts at ``t`` and burns ``cpu_per_s`` cores."""
        wanted = cpu_per_s
        for m in self._members.values():
            if m.busy_at(t):
                wanted += m.cpu_per_s
        return wanted / self.cores if wanted > self.cores else 1.0

    def process(self) -> FcfsServer:
        """A new member standing for a process whose CPU use is charged here (:meth:`admit`) but whose
        own latency is modelled elsewhere: nats-server, whose CPU per message outweighs its serial service
        time."""
        server = FcfsServer(1)
        self.join(server)
        return server

    def admit(self, server: FcfsServer, now: float, service: float) -> tuple[float, float]:
        """Queue ``service`` seconds of CPU on member ``server``; return (start, how long it holds the
        server): FCFS on its own server, then stretched by what else the host runs at its start."""
        m = self._members.get(server)
        if m is None:
            raise RuntimeMisuseError("this server never joined the host (SimHost.join it first)")
        server.busy += service
        start = server._free if server._free > now else now
        held = service * self.stretch(start, m.cpu_per_s)
        server._free = start + held
        m.add(start, start + held)
        self.waited += held - service
        return start, held

    def cpu_s(self) -> float:
        """CPU seconds the members have used so far (their busy time, each by its cores per second)."""
        return sum(server.busy * m.cpu_per_s for server, m in self._members.items())


def admit(server: FcfsServer, now: float, service: float, host: SimHost | None) -> tuple[float, float]:
    """(start, time held) of ``service`` on ``server``: on the host's shared cores when there is one."""
    if host is not None:
        return host.admit(server, now, service)
    return server.admit(now, service), service


__all__ = ["SimHost", "admit"]
