"""SimMessaging: NATS-like messaging in virtual time, with embedded MemoryInbox listeners.

Every send occupies the messaging pipeline (an FCFS server, cost ``per_message``; ``per_request`` in ack
mode), so a fan-out of N is accepted at ``t0 + i * cost``. Delivery to each listening inbox happens
``delivery`` later, scheduled as one SimPy timeout with a callback (no process per message), and stamps
``received_at`` with that virtual time. ``publish`` sends are buffered and do not block; ``flush`` waits
until the pipeline has drained plus one ``flush`` round trip. ``ack`` sends wait until the inbox's
acknowledgement is back (``delivery + ack``), honour their ``timeout`` themselves (``self_timed``) and
fail with NO_LISTENER when nobody listens. Sinks (:meth:`attach_sink`) stand in for agents of large
fleets: matching identities count as listening and their deliveries are logged analytically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mcastlab.backends.base import DELIVERED, ERROR, NO_LISTENER, TIMEOUT, UNAVAILABLE, Capabilities, Message
from mcastlab.backends.memory import Listeners
from mcastlab.errors import BackendUnavailableError, ClosedError, DeliveryError, OperationTimeoutError
from mcastlab.runtime import SimAwait, SimPyRuntime
from mcastlab.sim._bind import bind_runtime, spawn_generators
from mcastlab.sim.cpu import SimCpu
from mcastlab.sim.faults import DROP, OUTAGE, FaultPlan
from mcastlab.sim.faults import ERROR as F_ERROR
from mcastlab.sim.host import SimHost
from mcastlab.sim.models import Sampler
from mcastlab.sim.queue import FcfsServer, OpStats

if TYPE_CHECKING:
    from mcastlab.sim.spec import MessagingSpec


class DeliverySink(Protocol):
    """Where a sink's deliveries go (e.g. :class:`mcastlab.workloads.agents.DeliveryLog`, or a run's
    recorder): receipts of identities that stand in for listening agents, without a process each."""

    def append(self, message_id: str, identity: str, t_sent: float, t_received: float,
               status: str = DELIVERED) -> None: ...

    def append_many(self, message_id: str, identities: Sequence[str], t_sent: float,
                    t_received: np.ndarray) -> None: ...


class SimMessaging:
    """Messaging protocol in virtual time; see the module docstring."""

    name = "sim-messaging"
    modes: Sequence[str] = ("publish", "ack")

    def __init__(
        self,
        spec: MessagingSpec,
        *,
        rng: np.random.Generator,
        faults: FaultPlan | None = None,
        cpu: SimCpu | None = None,
    ) -> None:
        self.spec = spec
        self.cpu = cpu  # the coordinator process's CPU: framing messages, receiving in-process deliveries
        self.runtime: SimPyRuntime | None = None  # bound by open(runtime)
        self.env: Any = None
        # publish sends never block here, so the coordinator fans them out with one worker; ack sends
        # wait for their ack and keep the window. ``inline: true`` makes every mode inline.
        # a publish fan-out's first attempt goes through publish_batch: one vectorised pass
        self.capabilities = Capabilities(
            self_timed=True, inline_modes=("publish", "ack") if spec.inline else ("publish",),
            publish_batch=True)
        g = spawn_generators(rng, 5)
        self._per_message = Sampler(spec.per_message, g[0])
        self._per_request = Sampler(spec.per_request or spec.per_message, g[1])
        self._flush = Sampler(spec.flush, g[2])
        self._delivery = Sampler(spec.delivery, g[3])
        self._ack = Sampler(spec.ack, g[4])
        self.server = FcfsServer(spec.servers)
        # (host, its member standing for this server's process, CPU seconds per message): set when the
        # simulation shares the machine's cores between the processes (mcastlab.sim.host)
        self.burn: tuple[SimHost, FcfsServer, float] | None = None
        self.faults = faults if faults is not None else FaultPlan((), None)
        self._faulty = bool(self.faults)
        self._listeners = Listeners()
        self._sinks: list[tuple[Callable[[str], bool], DeliverySink]] = []
        self._sink_cache: dict[str, DeliverySink | None] = {}
        self._open = 0
        self.stats = OpStats()
        self._send_stats = self.stats["send"]
        self.sent = 0
        self.delivered = 0  # messages put into inboxes (or logged by sinks)
        self.lost = 0  # dropped, or due while the server was down
        # per publish fan-out: when this process's agents will have read its receipts (FCFS on the CPU); the
        # flush completes no earlier (the server's reply to it comes behind them on the same connection)
        self._local: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Any) -> None:
        self.runtime, self.env = bind_runtime(self, runtime)
        self._open += 1

    async def close(self) -> None:
        self._open = max(0, self._open - 1)

    # ------------------------------------------------------------------ listeners
    def attach_sink(self, log: DeliverySink, match: str | Callable[[str], bool] | None = None) -> None:
        """Treat identities matching ``match`` (a prefix, a predicate, or all) as listening agents that
        acknowledge on receipt; their deliveries are appended to ``log`` without a process each."""
        if match is None:
            pred: Callable[[str], bool] = _always
        elif isinstance(match, str):
            pred = _Prefix(match)
        else:
            pred = match
        self._sinks.append((pred, log))
        self._sink_cache.clear()

    def _sink(self, identity: str) -> DeliverySink | None:
        cache = self._sink_cache
        if identity in cache:
            return cache[identity]
        found = None
        for pred, log in self._sinks:
            if pred(identity):
                found = log
                break
        if len(cache) < 2_000_000:
            cache[identity] = found
        return found

    def listening(self, identity: str) -> bool:
        return bool(self._listeners.get(identity)) or self._sink(identity) is not None

    def inbox(self, identity: str) -> Any:
        """Listen on ``identity``'s inbox; deliveries arrive after their modelled network delay."""
        if self.runtime is None:
            raise ClosedError("SimMessaging is not open; use it through 'async with Coordinator(...)'")
        return self._listeners.listen(identity, self.runtime)

    # ------------------------------------------------------------------ delivery
    def _on_delivery(self, event: Any) -> None:
        msg = event.value
        cpu = self.cpu
        if cpu is not None:  # an agent of this process receives it: its work queues on the process CPU now
            msg = msg._replace(received_at=cpu.charge(self.env.now, cpu.per_delivery))
        for box in self._listeners.get(msg.identity, ()):
            box.deliver(msg)

    def _charge_receipts(self, event: Any) -> None:
        cpu = self.cpu
        if cpu is not None:
            cpu.charge(self.env.now, cpu.per_delivery * event.value)

    def _deliver(self, message: Message, t_recv: float, listeners: bool, sink: DeliverySink | None) -> None:
        """Schedule the receipt at ``t_recv`` (or log it analytically for a sink); an in-process receiver
        (an inbox agent of this process) costs the process CPU when it receives."""
        self.delivered += 1
        if sink is not None and self.cpu is not None:
            ev = self.env.timeout(t_recv - self.env.now, 1)
            ev.callbacks.append(self._charge_receipts)
        if sink is not None:
            sink.append(message.id, message.identity, message.sent_at, t_recv, DELIVERED)
        if listeners:
            received = Message(
                message.id,
                message.payload,
                message.identity,
                message.sent_at,
                message.attempt,
                message.redelivery,
                t_recv,
            )
            ev = self.env.timeout(t_recv - self.env.now, received)
            ev.callbacks.append(self._on_delivery)

    async def _fail(self, delay: float, exc: BaseException) -> None:
        if delay > 0:
            await SimAwait(self.env.timeout(delay))
        raise exc

    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        if not self._open:
            raise ClosedError("SimMessaging is not open; use it through 'async with Coordinator(...)'")
        now = self.env.now
        self.sent += 1
        factor, dropped = 1.0, False
        if self._faulty:
            decision, factor, delay = self.faults.decide("send", now)
            if decision == OUTAGE:
                self.stats["send"].fail(UNAVAILABLE)
                await self._fail(
                    self.spec.connect_timeout if delay is None else delay,
                    DeliveryError(
                        "simulated messaging server is down (outage)", status=UNAVAILABLE, backend=self.name
                    ),
                )
            if decision == F_ERROR:
                self.stats["send"].fail(ERROR)
                raise DeliveryError("simulated messaging error", status=ERROR, backend=self.name)
            dropped = decision == DROP
        cost = self._per_message() if mode == "publish" else self._per_request()
        if factor != 1.0:
            cost *= factor
        cpu = self.cpu
        ready = now if cpu is None else cpu.charge(now, cpu.per_message)
        start = self.server.admit(ready, cost)
        accepted = start + cost
        if self.burn is not None:  # the server process's CPU on the machine's shared cores (sim/host.py)
            host, proc, per = self.burn
            host.admit(proc, start, per)
        c = self._send_stats
        c.count += 1
        c.wait_s += start - now
        c.service_s += cost
        ident = message.identity
        listeners = ident in self._listeners
        sink = self._sink(ident) if self._sinks else None
        t_recv = accepted + self._delivery() * factor if (listeners or sink is not None) else accepted
        if dropped or (self._faulty and self.faults.down(t_recv)):
            self.lost += 1
            dropped = True
        elif listeners or sink is not None:
            self._deliver(message, t_recv, listeners, sink)
            if mode == "publish" and self.cpu is not None:  # sends come in order: Lindley, one step
                done = self._local.get(message.id, self.cpu.server.free_at)
                self._local[message.id] = max(done, t_recv) + self.cpu.per_delivery
        if mode == "publish":
            return  # buffered: accepted at ``accepted``; flush confirms
        if not listeners and sink is None:
            answer = accepted - now + self._ack() * factor  # the server's "no responders" reply
            if answer > timeout:  # it would come back after the sender gave up: a timeout
                self.stats["send"].fail(TIMEOUT)
                await self._fail(timeout, DeliveryError(f"no acknowledgement within {timeout} s",
                                                        status=TIMEOUT, backend=self.name))
            self.stats["send"].fail(NO_LISTENER)
            await self._fail(answer, DeliveryError(f"no listener on {message.identity!r}",
                                                   status=NO_LISTENER, backend=self.name))
        done = t_recv + self._ack() * factor
        if dropped or done - now > timeout:
            self.stats["send"].fail(TIMEOUT)
            await self._fail(
                timeout,
                DeliveryError(f"no acknowledgement within {timeout} s", status=TIMEOUT, backend=self.name),
            )
        await SimAwait(self.env.timeout(done - now))

    async def publish_batch(self, message_id: str, payload: bytes, identities: Sequence[str], *,
                            sent_at: float) -> dict[str, str]:
        """Buffer one publish per identity in one pass (the same FCFS pipeline and delivery model as
        :meth:`send`, drawn as arrays); returns the failures only. With faults, or several pipeline
        servers, it sends one by one."""
        if not self._open:
            raise ClosedError("SimMessaging is not open; use it through 'async with Coordinator(...)'")
        n = len(identities)
        if self._faulty or self.server.servers != 1 or n == 0:
            failed: dict[str, str] = {}
            for ident in identities:
                try:
                    await self.send(Message(message_id, payload, ident, sent_at), mode="publish", timeout=5.0)
                except DeliveryError as exc:
                    failed[ident] = exc.status
            return failed
        now = self.env.now
        costs = self._per_message.many(n)
        cpu = self.cpu
        ready = now if cpu is None else cpu.charge(now, cpu.per_fanout + cpu.per_message * n)
        server = self.server
        start = server._free if server._free > ready else ready
        total = float(costs.sum())
        if self.burn is not None:  # the server process's CPU on the machine's shared cores (sim/host.py)
            host, proc, per = self.burn
            host.admit(proc, start, per * n)
        accepted = start + np.cumsum(costs)
        server._free = float(accepted[-1])
        server.busy += total
        c = self._send_stats
        c.count += n
        c.service_s += total
        c.wait_s += float((accepted - costs - now).sum())
        self.sent += n
        listeners, sink_of = self._listeners, self._sink
        by_sink: dict[int, tuple[DeliverySink, list[int]]] = {}
        local: list[float] = []
        for i, ident in enumerate(identities):
            if ident in listeners:
                t = float(accepted[i]) + self._delivery()
                self._deliver(Message(message_id, payload, ident, sent_at), t, True, None)
                local.append(t)
            if self._sinks:
                sink = sink_of(ident)
                if sink is not None:
                    by_sink.setdefault(id(sink), (sink, []))[1].append(i)
        for sink, idx in by_sink.values():
            pos = np.asarray(idx, np.int64)
            t_recv = accepted[pos] + self._delivery.many(len(pos))
            if cpu is not None:  # the receivers stand for agents of this process: their work is charged to
                # its CPU when the first receipt arrives (their receipt times are not delayed by it)
                ev = self.env.timeout(float(t_recv.min()) - now, len(pos))
                ev.callbacks.append(self._charge_receipts)
            sink.append_many(message_id, [identities[i] for i in idx], sent_at, t_recv)
            self.delivered += len(idx)
            local.extend(t_recv.tolist())
        if local and cpu is not None:
            arrivals = np.sort(np.asarray(local))
            self._local[message_id] = _read_by(arrivals, cpu.server.free_at, cpu.per_delivery)
        return {}

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        now = self.env.now
        factor = 1.0
        if self._faulty:
            decision, factor, delay = self.faults.decide("flush", now)
            if decision == OUTAGE:
                self.stats["flush"].fail(UNAVAILABLE)
                await self._fail(
                    self.spec.connect_timeout if delay is None else delay,
                    BackendUnavailableError("simulated messaging server is down (outage)", backend=self.name),
                )
        free = self.server.free_at
        done = (free if free > now else now) + self._flush() * factor
        local = self._local.pop(message_id, None) if message_id is not None else None
        if local is not None:  # the reply comes behind this process's receipts of the fan-out
            done = max(done, local)
        self.stats["flush"].count += 1
        if done - now > timeout:
            self.stats["flush"].fail(TIMEOUT)
            await self._fail(
                timeout,
                OperationTimeoutError(f"flush did not complete within {timeout} s", backend=self.name),
            )
        await SimAwait(self.env.timeout(done - now))


def _read_by(arrivals: np.ndarray, free: float, each: float) -> float:
    """When one server taking ``each`` seconds per item, free from ``free``, has served items arriving at
    the sorted ``arrivals`` (FCFS): ``max(free + n each, max_k(arrivals[k] + (n - k) each))``."""
    n = len(arrivals)
    return float(max(free + n * each, float(np.max(arrivals + (n - np.arange(n)) * each))))


def _always(_identity: str) -> bool:
    return True


class _Prefix:
    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, identity: str) -> bool:
        return identity.startswith(self.prefix)


__all__ = ["SimMessaging"]
