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
from typing import TYPE_CHECKING, Any

import numpy as np

from mcastlab.backends.base import DELIVERED, ERROR, NO_LISTENER, TIMEOUT, UNAVAILABLE, Capabilities, Message
from mcastlab.backends.memory import Listeners
from mcastlab.errors import BackendUnavailableError, ClosedError, DeliveryError, OperationTimeoutError
from mcastlab.runtime import SimAwait, SimPyRuntime
from mcastlab.sim.faults import DROP, OUTAGE, FaultPlan
from mcastlab.sim.faults import ERROR as F_ERROR
from mcastlab.sim.models import Sampler
from mcastlab.sim.queue import FcfsServer, OpStats
from mcastlab.sim.registry import bind_runtime, spawn_generators

if TYPE_CHECKING:
    from mcastlab.sim.agents import DeliveryLog
    from mcastlab.sim.spec import MessagingSpec


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
    ) -> None:
        self.spec = spec
        self.runtime: SimPyRuntime | None = None  # bound by open(runtime)
        self.env: Any = None
        # publish sends never block here, so the coordinator fans them out with one worker; ack sends
        # wait for their ack and keep the window. ``inline: true`` makes every mode inline.
        self.capabilities = Capabilities(
            self_timed=True, inline_modes=("publish", "ack") if spec.inline else ("publish",))
        g = spawn_generators(rng, 5)
        self._per_message = Sampler(spec.per_message, g[0])
        self._per_request = Sampler(spec.per_request or spec.per_message, g[1])
        self._flush = Sampler(spec.flush, g[2])
        self._delivery = Sampler(spec.delivery, g[3])
        self._ack = Sampler(spec.ack, g[4])
        self.server = FcfsServer(spec.servers)
        self.faults = faults if faults is not None else FaultPlan((), None)
        self._faulty = bool(self.faults)
        self._listeners = Listeners()
        self._sinks: list[tuple[Callable[[str], bool], DeliveryLog]] = []
        self._sink_cache: dict[str, DeliveryLog | None] = {}
        self._open = 0
        self.stats = OpStats()
        self._send_stats = self.stats["send"]
        self.sent = 0
        self.delivered = 0  # messages put into inboxes (or logged by sinks)
        self.lost = 0  # dropped, or due while the server was down

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Any) -> None:
        self.runtime, self.env = bind_runtime(self, runtime)
        self._open += 1

    async def close(self) -> None:
        self._open = max(0, self._open - 1)

    # ------------------------------------------------------------------ listeners
    def attach_sink(self, log: DeliveryLog, match: str | Callable[[str], bool] | None = None) -> None:
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

    def _sink(self, identity: str) -> DeliveryLog | None:
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
        for box in self._listeners.get(msg.identity, ()):
            box.deliver(msg)

    def _deliver(self, message: Message, t_recv: float, listeners: bool, sink: DeliveryLog | None) -> None:
        """Schedule the receipt at ``t_recv`` (or log it analytically for a sink)."""
        self.delivered += 1
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
        start = self.server.admit(now, cost)
        accepted = start + cost
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
        self.stats["flush"].count += 1
        if done - now > timeout:
            self.stats["flush"].fail(TIMEOUT)
            await self._fail(
                timeout,
                OperationTimeoutError(f"flush did not complete within {timeout} s", backend=self.name),
            )
        await SimAwait(self.env.timeout(done - now))


def _always(_identity: str) -> bool:
    return True


class _Prefix:
    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, identity: str) -> bool:
        return identity.startswith(self.prefix)


__all__ = ["SimMessaging"]
