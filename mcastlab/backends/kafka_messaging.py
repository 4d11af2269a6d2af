"""KafkaMessaging: the messaging slot on a Kafka-protocol broker (aiokafka; asyncio runtime only).

Theory of operation (the wire format is in docs/wire-protocol.md, section "Kafka")
---------------------------------------------------------------------------------
* **Topic layout.** One inbox topic per prefix, ``<prefix>.inbox``, created on first open with
  ``partitions`` partitions (an existing topic keeps its own count). A record's **key** is the identity's
  UTF-8 name, its **value** the payload as-is, and one header ``Mcast-Msg`` carries ``<attempt>
  <redelivery 0|1> <sent_at as float.hex()> <message id>`` (the NATS header's format). The partition is
  murmur2(key) like the Java client's default partitioner, so one identity's messages stay in order.
  Keys are compared byte for byte by the receiving side, so no identity name can reach another's inbox.
* **publish mode.** ``publish_batch`` builds one record batch per partition (aiokafka's
  ``create_batch``/``send_batch``: no per-record ``send`` call) and keeps the batches' delivery futures
  under the fan-out's message id; ``flush(message_id=...)`` waits for those acknowledgements (the
  producer uses ``acks="all"``). A batch that fails or is not acknowledged within the timeout fails the
  whole fan-out (``unavailable`` / ``timeout``): aiokafka may still retry it in the background, so a
  message reported failed can arrive later (at-least-once, as with every retry).
* **ack mode is refused** (``modes == ("publish",)``, the coordinator raises UnsupportedError): a Kafka
  producer cannot know whether anyone consumes an identity's key — the record waits in the log — so the
  contract's immediate ``no_listener`` cannot be honoured, and a reply-topic ack would make every absent
  identity cost the full send timeout. Use the durability slot (``KafkaDurability``: record, replay,
  acknowledge with ``outcome``) for confirmed delivery; devices commit their own consumer offsets.
* **Inboxes.** One consumer per messaging instance (not per inbox), started by the first ``inbox()``:
  it is assigned every partition of the inbox topic (no consumer group: each coordinator sees every
  record), positioned at the log end before ``inbox()`` returns, and dispatches each record by key to
  the in-process inboxes listening on that identity (:class:`~mcastlab.backends.memory.Listeners`), so
  thousands of inboxes cost one fetch loop. Everything produced after ``inbox()`` returns is received.
  ``fetch_wait`` is the fetch's max wait: a broker that holds a fetch until then even when data arrives
  (Tansu 0.6.0 does, measured: delivery p50 ~18 ms at 25 ms, ~55 ms at 100 ms) adds up to that much
  delivery latency; shorter waits poll more (measured here: 1 ms made 1-target fan-outs ~3x slower).
* **Outages.** A connection the broker drops marks the backend down; while down, ``publish_batch`` and
  ``send`` fail at once with ``unavailable`` after one bounded recovery attempt (at most every
  ``recover_interval`` s) that re-creates the topic — a memory-only broker (Tansu) forgets topics when
  it restarts — so the same instance carries on once the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from mcastlab.backends._kafka_common import (
    check_positive,
    check_topic,
    ensure_topic,
    identity_key,
    key_identity,
    parse_bootstrap,
    partition_for,
    stop_quietly,
    unavailable,
    watch_connections,
)
from mcastlab.backends._subjects import HEADER, header_value, parse_header
from mcastlab.backends.base import ERROR, UNAVAILABLE, Capabilities, Message
from mcastlab.backends.memory import Listeners, MemoryInbox
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    DeliveryError,
    OperationTimeoutError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from mcastlab.runtime.base import Runtime

log = logging.getLogger("mcastlab.kafka")


class KafkaMessaging:
    """Messaging on Kafka; see the module docstring. Shareable: ``open``/``close`` are reference counted."""

    name = "kafka"
    modes: Sequence[str] = ("publish",)
    # send/flush bound themselves; a publish fan-out is framed into record batches in one call
    capabilities = Capabilities(self_timed=True, inline_modes=("publish",), publish_batch=True)

    def __init__(self, bootstrap: str | Sequence[str], *, prefix: str = "mcast", partitions: int = 8,
                 timeout: float = 10.0, linger_ms: int = 0, max_batch_bytes: int = 1 << 20,
                 recover_interval: float = 0.25, fetch_wait: float = 0.025,
                 client_id: str = "mcastlab") -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.prefix = check_topic(prefix, key="prefix")
        self.topic = check_topic(f"{prefix}.inbox", key="prefix")
        self.partitions = int(check_positive(partitions, key="partitions", integer=True, limit=10_000))
        self.timeout = float(check_positive(timeout, key="timeout", limit=3600))
        if isinstance(linger_ms, bool) or not isinstance(linger_ms, int) or not 0 <= linger_ms <= 60_000:
            raise ConfigError(f"linger_ms must be an int in 0..60000, got {linger_ms!r:.40}", key="linger_ms")
        self._linger_ms = linger_ms
        self._batch_bytes = int(check_positive(max_batch_bytes, key="max_batch_bytes", integer=True,
                                               limit=64 << 20))
        self.recover_interval = float(check_positive(recover_interval, key="recover_interval", limit=60))
        self._fetch_wait_ms = max(1, round(1000 * check_positive(fetch_wait, key="fetch_wait", limit=10)))
        if not isinstance(client_id, str) or not client_id or not client_id.isprintable():
            raise ConfigError(f"client_id must be a non-empty printable str, got {client_id!r:.40}",
                              key="client_id")
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._pump: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._listeners = Listeners()
        self._runtime: Runtime | None = None
        self._opens = 0
        self._inflight: dict[str, list[asyncio.Future[Any]]] = {}
        self._parts: dict[str, tuple[bytes, int]] = {}  # identity -> (key, partition), cached
        self._down = False
        self._next_recover = 0.0
        self.disconnects = 0
        self.recoveries = 0

    def __repr__(self) -> str:
        return f"KafkaMessaging({','.join(self.bootstrap)!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Runtime) -> None:
        """Create the inbox topic if needed and start the producer (first open)."""
        self._opens += 1
        if self._opens > 1:
            return
        self._runtime = runtime
        try:
            self.partitions, _ = await ensure_topic(self.bootstrap, self.topic, self.partitions,
                                                 timeout=self.timeout, backend=self.name)
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=self._linger_ms,
                max_batch_size=self._batch_bytes, max_request_size=self._batch_bytes + 4096,
                request_timeout_ms=int(self.timeout * 1000), client_id=self.client_id)
            watch_connections(producer.client, self._broken)  # before start: its connections use it
            try:
                await asyncio.wait_for(producer.start(), self.timeout)
            except BaseException as exc:
                await stop_quietly(producer)
                if isinstance(exc, asyncio.CancelledError | BackendError):
                    raise
                raise unavailable(exc, f"cannot connect to Kafka at {self.bootstrap}", self.name) from None
        except BaseException:
            self._opens = 0
            raise
        self._producer = producer

    async def close(self) -> None:
        """Release one open; the last one stops the consumer and the producer."""
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens:
            return
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        await stop_quietly(consumer)
        await stop_quietly(producer)
        self._inflight.clear()

    def _broken(self) -> None:
        self.disconnects += 1
        self._down = True

    def _live_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        return self._producer

    @property
    def connected(self) -> bool:
        """False after a broker connection broke, until a send or recovery succeeds again."""
        return self._producer is not None and not self._down

    async def _recovered(self) -> bool:
        """While down: one bounded attempt (rate-limited) to reach the broker and re-create the topic."""
        if not self._down:
            return True
        now = asyncio.get_running_loop().time()  # the event loop's clock: only paces reconnect attempts
        if now < self._next_recover:
            return False
        self._next_recover = now + self.recover_interval
        try:
            await ensure_topic(self.bootstrap, self.topic, self.partitions,
                               timeout=min(self.timeout, 1.0), backend=self.name)
        except BackendError:
            return False
        self._down = False
        self.recoveries += 1
        return True

    # ------------------------------------------------------------------ sending
    def _route(self, identity: str) -> tuple[bytes, int]:
        route = self._parts.get(identity)
        if route is None:
            key = identity_key(identity)
            route = (key, partition_for(key, self.partitions))
            if len(self._parts) < 1 << 20:
                self._parts[identity] = route
        return route

    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        """Produce one record (publish mode; confirmed by ``flush``); failures raise DeliveryError."""
        producer = self._live_producer()
        if mode != "publish":
            raise UnsupportedError(f"KafkaMessaging supports mode='publish' only, not {mode!r} (see "
                                   "docs/wire-protocol.md: a Kafka producer cannot see listeners)")
        if not await self._recovered():
            raise DeliveryError(f"Kafka is unreachable; not sent to {message.identity!r}", status=UNAVAILABLE,
                                backend=self.name)
        key, part = self._route(message.identity)
        try:
            fut = await asyncio.wait_for(producer.send(
                self.topic, message.payload, key=key, partition=part,
                headers=[(HEADER, header_value(message).encode())]), timeout)
        except TimeoutError:
            raise DeliveryError(f"Kafka did not take the record for {message.identity!r} within {timeout} s",
                                status=UNAVAILABLE, backend=self.name) from None
        except Exception as exc:
            err = unavailable(exc, f"sending to {message.identity!r} failed", self.name)
            status = UNAVAILABLE if isinstance(err, BackendUnavailableError) else ERROR
            raise DeliveryError(str(err), status=status, backend=self.name) from None
        self._inflight.setdefault(message.id, []).append(fut)

    async def publish_batch(self, message_id: str, payload: bytes, identities: Sequence[str], *,
                            sent_at: float) -> dict[str, str]:
        """Frame one record per identity into per-partition batches and hand them to the producer;
        returns only the failures' statuses (acknowledgements are awaited by ``flush``)."""
        producer = self._live_producer()
        if not identities:
            return {}
        if not await self._recovered():
            return dict.fromkeys(identities, UNAVAILABLE)
        headers = [(HEADER, header_value(Message(message_id, payload, "", sent_at)).encode())]
        routes, route, create = self._parts, self._route, producer.create_batch
        builders: dict[int, Any] = {}
        futures = self._inflight.setdefault(message_id, [])
        try:
            for ident in identities:
                key, part = routes.get(ident) or route(ident)
                builder = builders.get(part)
                if builder is None:
                    builder = builders[part] = create()
                if builder.append(key=key, value=payload, timestamp=None, headers=headers) is None:
                    await self._submit(producer, builders.pop(part), part, futures)  # full: send it
                    builder = builders[part] = create()
                    if builder.append(key=key, value=payload, timestamp=None, headers=headers) is None:
                        raise DeliveryError(f"one record to {ident!r} exceeds max_batch_bytes="
                                            f"{self._batch_bytes}", status=ERROR, backend=self.name)
            for part, builder in builders.items():
                await self._submit(producer, builder, part, futures)
        except DeliveryError as exc:
            futures.clear()  # the fan-out is incomplete: fail all of it rather than confirm a part
            return dict.fromkeys(identities, exc.status)
        return {}

    async def _submit(self, producer: AIOKafkaProducer, builder: Any, part: int,
                      futures: list[asyncio.Future[Any]]) -> None:
        """Hand one record batch to the producer (bounded wait); its future goes to ``futures``."""
        try:
            fut = await asyncio.wait_for(producer.send_batch(builder, self.topic, partition=part),
                                         self.timeout)
        except TimeoutError:
            self._down = True
            raise DeliveryError(f"Kafka took no batch for partition {part} within {self.timeout} s",
                                status=UNAVAILABLE, backend=self.name) from None
        except Exception as exc:
            err = unavailable(exc, f"Kafka refused a batch for partition {part}", self.name)
            if isinstance(err, BackendUnavailableError):
                self._down = True
            raise DeliveryError(str(err), status=UNAVAILABLE if self._down else ERROR,
                                backend=self.name) from None
        futures.append(fut)

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        """Wait for the broker's acknowledgement of the fan-out's records (all buffered ones if no id)."""
        self._live_producer()
        if message_id is None:
            futures = [f for fs in self._inflight.values() for f in fs]
            self._inflight.clear()
        else:
            futures = self._inflight.pop(message_id, [])
        if not futures:
            return
        done, pending = await asyncio.wait(futures, timeout=timeout)
        failed = next((f.exception() for f in done if not f.cancelled() and f.exception()), None)
        if failed is not None:
            err = unavailable(failed, "Kafka did not acknowledge the fan-out", self.name)
            if isinstance(err, BackendUnavailableError):
                self._down = True
            raise err
        if pending:
            if self._down:
                raise BackendUnavailableError("Kafka connection broke before the fan-out was acknowledged",
                                              backend=self.name)
            self._down = True  # check the broker (and the topic) before the next fan-out
            raise OperationTimeoutError(f"Kafka did not acknowledge the fan-out within {timeout} s",
                                        backend=self.name)

    # ------------------------------------------------------------------ receiving
    @asynccontextmanager
    async def inbox(self, identity: str) -> AsyncIterator[MemoryInbox]:
        """Listen on ``identity``'s records; the shared consumer is positioned before this yields."""
        self._live_producer()
        runtime = self._runtime
        assert runtime is not None
        await self._start_consumer()
        async with self._listeners.listen(identity, runtime) as box:
            yield box

    async def _start_consumer(self) -> None:
        async with self._starting:
            if self._consumer is not None:
                return
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None,
                auto_offset_reset="earliest",  # a topic re-created after a broker restart: read it all
                fetch_max_wait_ms=self._fetch_wait_ms, request_timeout_ms=int(self.timeout * 1000),
                client_id=f"{self.client_id}-inbox")
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            try:
                await asyncio.wait_for(consumer.start(), self.timeout)
                consumer.assign(tps)
                await asyncio.wait_for(consumer.seek_to_end(*tps), self.timeout)
                for tp in tps:  # resolves the end offsets now: later records are all received
                    await asyncio.wait_for(consumer.position(tp), self.timeout)
            except BaseException as exc:
                await stop_quietly(consumer)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise BackendUnavailableError(f"cannot start the inbox consumer on {self.topic!r}: {exc!r}",
                                              backend=self.name) from None
            self._consumer = consumer
            self._pump = asyncio.ensure_future(self._dispatch(consumer))

    async def _dispatch(self, consumer: AIOKafkaConsumer) -> None:
        """The one fetch loop: hand each record to the inboxes listening on its key."""
        listeners = self._listeners
        runtime = self._runtime
        assert runtime is not None
        now = runtime.now
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker outage: aiokafka reconnects; keep fetching
                log.debug("inbox fetch failed: %r", exc)
                await asyncio.sleep(0.1)
                continue
            for records in batches.values():
                for rec in records:
                    boxes = listeners.get(key_identity(rec.key))
                    if not boxes:
                        continue
                    hdr = next((v for k, v in rec.headers if k == HEADER), None)
                    mid, sent_at, attempt, redelivery = parse_header(hdr.decode() if hdr else None)
                    msg = Message(mid, rec.value or b"", boxes[0].identity, sent_at, attempt, redelivery,
                                  now())
                    for box in boxes:
                        box.deliver(msg)


__all__ = ["KafkaMessaging"]
