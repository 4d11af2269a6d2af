"""The workload context: one open-loop scheduler, device lifecycles, agents, probes and sampling.

Theory of operation: everything a workload does is a callback ``fn(t, *args)`` in one heap of
scheduled instants. A single coroutine (``run_loop``) sleeps until the earliest instant and calls the
callbacks due; callbacks spawn measured operations (:class:`OpsMixin`) and schedule further callbacks
(a device's next heartbeat, a stream's next arrival). Nothing waits for an operation to finish before
the next is issued, so the load is open-loop. The workload never imports asyncio or simpy: it uses
the coordinator's runtime, so the same code runs live and in virtual time.

Devices: ``state`` is OFFLINE, ONLINE (heartbeating) or DEAD; a generation counter per identity
cancels its pending heartbeats when it reboots, dies or reconnects.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mcastlab.errors import McastlabError
from mcastlab.measure.recorder import Recorder
from mcastlab.workloads._journal import JournaledTruth
from mcastlab.workloads._ops import OpsMixin
from mcastlab.workloads._partition import Partition
from mcastlab.workloads.arrivals import Arrival
from mcastlab.workloads.truth import Truth

OFFLINE, ONLINE, DEAD = 0, 1, 2
log = logging.getLogger("mcastlab.workloads.context")
Callback = Callable[..., object]  # its return value is ignored


def stream_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of stream ``name``: a child of the run's seed, independent of creation order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


class Context(OpsMixin):
    """What a workload kind uses to create identities and schedule operations."""

    def __init__(
        self,
        *,
        coordinator: Any,
        seed: int,
        recorder: Recorder,
        duration: float,
        ttl: float | None,
        agents: str | int = "none",
        tol: float = 0.0,
        probe_interval: float = 0.05,
        probe_max: float = 60.0,
        yield_every: int = 0,
        cpu: Any = None,
        partition: Partition | None = None,
        origin: float | None = None,
    ) -> None:
        self.coord = coordinator
        self.runtime = coordinator.runtime
        self.cpu = cpu  # sim: the coordinator process's CPU, charged per operation the generator issues
        self.origin = float(self.runtime.now()) if origin is None else float(origin)
        self.seed = seed
        self.rec = recorder
        self.part = partition if partition is not None else Partition()
        # replicas journal their truth: the parent replays every replica's as one (workloads._journal)
        self.truth = Truth() if self.part.whole else JournaledTruth(self.now)
        self.duration = duration
        self.ttl = ttl
        self.tol = tol
        self.agents_policy = agents
        self.probe_interval = probe_interval
        self.probe_max = probe_max
        self.inflight = 0
        self._tasks: dict[int, Any] = {}
        self._task_seq = 0
        self._agent_tasks: list[Any] = []
        self._heap: list[tuple[float, int, Callback, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._sleep_until = -np.inf
        self._yield_every = yield_every
        self.state: list[int] = []
        self.period: list[float] = []
        self.jitter: list[float] = []
        self.gen: list[int] = []
        self.blocked_until = -np.inf  # devices cannot reach the service before this instant (outage)
        self.cut: set[int] = set()
        self._hb_rng = self.rng("heartbeat-jitter")
        self.deaths: list[int] = []
        self.agent_errors = 0
        self.failure: BaseException | None = None  # the first unexpected exception of a workload task
        self._stopped = False

    # ------------------------------------------------------------------ randomness and scheduling
    def rng(self, name: str) -> np.random.Generator:
        """An independent generator for the named stream, derived from the run's seed."""
        return stream_rng(self.seed, name)

    def at(self, t: float, fn: Callback, *args: Any) -> None:
        """Call ``fn(t, *args)`` at instant ``t`` (seconds since the origin)."""
        if t >= self._sleep_until:
            heapq.heappush(self._heap, (t, next(self._seq), fn, args))
        else:  # earlier than the instant the loop sleeps until: a one-off sleeper
            self._spawn(self._later(t, fn, args))

    async def _later(self, t: float, fn: Callback, args: tuple[Any, ...]) -> None:
        delay = t - self.now()
        if delay > 0:
            await self.runtime.sleep(delay)
        if not self._stopped and t < self.duration:
            try:
                fn(t, *args)
            except Exception as exc:
                self.fail(exc)

    def stream(self, arrival: Arrival, fn: Callback, *args: Any, name: str) -> int:
        """Call ``fn(t, *args)`` at each instant of ``arrival`` (precomputed); returns how many."""
        times = arrival.times(self.rng(f"arrivals:{name}"), self.duration)
        if len(times):
            self.at(float(times[0]), self._next_arrival, times, 0, fn, args)
        return len(times)

    def _next_arrival(self, t: float, times: np.ndarray, i: int, fn: Callback, args: tuple[Any, ...]) -> None:
        if i + 1 < len(times):
            self.at(float(times[i + 1]), self._next_arrival, times, i + 1, fn, args)
        fn(t, *args)

    async def run_loop(self, end: float) -> None:
        """Run scheduled callbacks until ``end`` (the workload's duration)."""
        heap, runtime = self._heap, self.runtime
        cpu = self.cpu if self.cpu is not None and self.cpu.models_idle else None
        pop = heapq.heappop
        n = 0
        every = self._yield_every
        while heap and not self._stopped:
            t = heap[0][0]
            if t >= end:
                break
            delay = t - self.now()
            if delay > 1e-9:
                self._sleep_until = t
                await runtime.sleep(delay)
                if cpu is not None:  # sim: the generator wakes late from an idle sleep, as live (sim/cpu.py)
                    woke = runtime.now()
                    late = cpu.timer_lag(woke)
                    cpu.charge(woke, cpu.wake_cost(woke))  # and waking costs CPU
                    if late > 0:
                        await runtime.sleep(late)
                self._sleep_until = -np.inf
                continue
            _, _, fn, args = pop(heap)
            try:
                fn(t, *args)
            except Exception as exc:  # a workload bug: stop the run, keep what was measured
                self.fail(exc)
                return
            n += 1
            if every and n % every == 0:
                await runtime.sleep(0)  # live: let spawned operations start when the generator is behind

    def stop(self) -> None:
        """Stop scheduling and cancel agents and operations still in flight."""
        self._stopped = True
        for task in [*self._agent_tasks, *self._tasks.values()]:
            task.cancel()
        self._agent_tasks.clear()

    # ------------------------------------------------------------------ identities and agents
    def identity(
        self, name: str, metadata: dict[str, Any], *, period: float = 0.0, jitter: float = 0.0
    ) -> int:
        """A new identity (offline until registered) with its heartbeat period and jitter fraction."""
        code = self.truth.add(name, metadata)
        self.state.append(OFFLINE)
        self.period.append(period)
        self.jitter.append(jitter)
        self.gen.append(0)
        policy = self.agents_policy
        if not self.part.owns(code):
            return code  # its agent runs in the replica that owns it
        if policy == "all" or (isinstance(policy, int) and not isinstance(policy, bool) and code < policy):
            self.rec.agents.add(code)
            self._agent_tasks.append(self.runtime.spawn(self._agent(code, name)))
        return code

    async def _agent(self, code: int, name: str) -> None:
        receipt, runtime = self.rec.receipt, self.runtime
        try:
            async with self.coord.inbox(name) as box:
                while True:
                    m = await box.get()
                    while m is not None:
                        t = m.received_at if m.received_at is not None else runtime.now()
                        receipt(m.id, code, t - self.origin)  # read now: a replica learns its origin late
                        m = box.get_nowait()
        except McastlabError:  # could not subscribe (server down): the identity just has no inbox
            log.warning("agent of %r could not listen on its inbox", name, exc_info=True)
            self.rec.agents.discard(code)
            self.agent_errors += 1
        except Exception as exc:
            self.fail(exc)

    # ------------------------------------------------------------------ device lifecycle
    def boot(
        self, t: float, code: int, metadata: Mapping[str, Any] | None = None, *, stream: str = "register"
    ) -> None:
        """Register at ``t`` (if devices can reach the service) and start heartbeating."""
        if self.state[code] == DEAD:
            return
        if metadata is not None:
            self.truth.set_meta(code, metadata)
        self.state[code] = ONLINE
        self.gen[code] += 1
        if t < self.blocked_until:
            self.cut.add(code)
        else:
            self.register(t, code, stream=stream)
        if self.period[code] > 0:
            self.at(self._next_beat(t, code), self._beat, code, self.gen[code])

    def _next_beat(self, t: float, code: int) -> float:
        p, j = self.period[code], self.jitter[code]
        return t + (p * (1.0 + j * (2.0 * self._hb_rng.random() - 1.0)) if j else p)

    def _beat(self, t: float, code: int, gen: int) -> None:
        if self.gen[code] != gen or self.state[code] != ONLINE:
            return
        if t < self.blocked_until:
            self.cut.add(code)
        else:
            self.heartbeat(t, code)
        self.at(self._next_beat(t, code), self._beat, code, gen)

    def go_offline(self, code: int) -> None:
        """Stop heartbeating without unregistering (the registration will expire)."""
        if self.state[code] == ONLINE:
            self.state[code] = OFFLINE
        self.gen[code] += 1

    def leave(self, t: float, code: int) -> None:
        """Unregister gracefully and go offline."""
        self.go_offline(code)
        if t >= self.blocked_until:
            self.unregister(t, code)

    def kill(self, t: float, code: int) -> None:
        """The device dies: no more heartbeats; a probe watches for it to stop being returned."""
        if self.state[code] == DEAD:
            return
        self.go_offline(code)
        self.state[code] = DEAD
        self.truth.died[code] = t
        self.deaths.append(code)
        self.at(max(t, float(self.truth.deadline[code])), self._probe_start, code)

    def reboot(
        self, t: float, code: int, down: float, metadata: Mapping[str, Any] | None = None,
        stream: str = "reboot"
    ) -> None:
        """Go offline now and boot again (re-register) ``down`` seconds later."""
        if self.state[code] != ONLINE:
            return
        self.go_offline(code)
        self.at(t + down, self._reboot_up, code, self.gen[code], metadata, stream)

    def _reboot_up(self, t: float, code: int, gen: int, metadata: Mapping[str, Any] | None,
                   stream: str) -> None:
        if self.gen[code] == gen and self.state[code] == OFFLINE:
            self.boot(t, code, metadata, stream=stream)

    def online(self) -> np.ndarray:
        """Codes of devices currently online (heartbeating)."""
        return np.flatnonzero(np.asarray(self.state, np.int8) == ONLINE)

    # ------------------------------------------------------------------ many devices at once
    # Workload kinds and faults act on groups of devices through these; the cohort engine
    # (mcastlab.workloads.cohort.FleetContext) implements them on numpy columns.
    def kill_at(self, times: np.ndarray, codes: np.ndarray) -> None:
        """Each device ``codes[i]`` dies at ``times[i]``."""
        for code, t in zip(codes.tolist(), times.tolist(), strict=True):
            self.at(float(t), self.kill, int(code))

    def kill_many(self, t: float, codes: np.ndarray) -> None:
        """Those of ``codes`` still online die now."""
        for code in codes.tolist():
            if self.state[code] == ONLINE:
                self.kill(t, code)

    def reboot_many(self, t: float, codes: np.ndarray, downs: np.ndarray | float,
                    update: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None, stream: str) -> None:
        """Each device goes offline now and boots again ``downs[i]`` seconds later, registering
        ``update(its metadata)`` when given."""
        down = np.broadcast_to(np.asarray(downs, float), len(codes))
        meta = self.truth.meta
        for code, d in zip(codes.tolist(), down.tolist(), strict=True):
            self.reboot(t, code, d, None if update is None else update(meta[code]), stream)

    def boot_together(self, t: float, codes: np.ndarray, *, jitter: float, stream: str) -> None:
        """The devices reboot in this instant (registering now) and heartbeat with ``jitter`` after."""
        for code in codes.tolist():
            self.jitter[code] = jitter
            self.go_offline(code)
            self.boot(t, code, stream=stream)

    def cut_off(self, codes: np.ndarray) -> None:
        """The devices lose their connection (subscriptions drop); they reconnect when the outage ends."""
        self.cut.update(codes.tolist())

    def reconnect_cut(self, t: float, spread: float, rng: np.random.Generator) -> None:
        """Every cut-off device that is not dead reconnects (registers again) within ``spread`` seconds."""
        codes = sorted(self.cut)
        self.cut.clear()
        for code in codes:
            if self.state[code] == DEAD:
                continue
            delay = float(rng.uniform(0, spread)) if spread else 0.0
            self.go_offline(code)
            self.at(t + delay, self._reconnect, code)

    def _reconnect(self, t: float, code: int) -> None:
        if self.state[code] != DEAD:
            self.boot(t, code, stream="reconnect")

    # ------------------------------------------------------------------ probes and sampling
    def _probe_start(self, t: float, code: int) -> None:
        if not self.part.owns(code):
            return
        truth = self.truth
        d = float(truth.deadline[code])
        if not truth.registered[code] or not np.isfinite(d):
            return
        if d > t + 1e-9:  # an operation in flight at death moved the deadline
            self.at(d, self._probe_start, code)
            return
        self._spawn(self._probe(code, d))

    async def _probe(self, code: int, deadline: float) -> None:
        name, coord = self.truth.names[code], self.coord
        while True:
            try:
                got = await coord.get(name)
            except Exception:
                log.debug("probe of %r failed; trying again", name, exc_info=True)
                got = True  # the backend failed: try again
            t = self.now()
            if got is None or (got is not True and self._rel(got.expires_at) != deadline):
                self.rec.gone(code, deadline, t)
                return
            if t - deadline > self.probe_max or self._stopped:
                return
            await self.runtime.sleep(self.probe_interval)

    def sample_population(self, interval: float) -> None:
        """Sample the registered population (count) every ``interval`` seconds from 0."""
        self.at(0.0, self._sample, interval)

    def _sample(self, t: float, interval: float) -> None:
        if self.part.index == 0:  # a count of the whole registry: one replica samples it
            self._spawn(self._do_sample(t))
        self.at(t + interval, self._sample, interval)

    async def _do_sample(self, t: float) -> None:
        try:
            n = await self.coord.count(None)
        except Exception:
            log.warning("population sample at t=%.3f s failed (recorded as -1)", t, exc_info=True)
            n = -1
        self.rec.sample(t, n, self.truth.alive_count(t))


__all__ = ["DEAD", "OFFLINE", "ONLINE", "Context", "stream_rng"]
