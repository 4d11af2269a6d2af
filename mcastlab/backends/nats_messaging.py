"""NatsMessaging: the messaging slot on NATS core (nats-py).

Theory of operation
-------------------
* **Subjects.** Each identity has one inbox subject ``<prefix>.<enc(identity)>``. ``enc`` keeps
  ``[A-Za-z0-9_-]`` and %-escapes every other UTF-8 byte, so the encoded name is always exactly one
  subject token: no identity name can be (or contain) a wildcard ``*`` / ``>``, add a level with ``.``,
  or inject whitespace, and the encoding is injective — an inbox receives only its own identity's messages.
* **Wire format.** The payload travels as-is; message id, send time, attempt and redelivery flag travel
  in one header, ``Mcast-Msg: <attempt> <0|1> <sent_at as float.hex()> <id>`` (hex: exact, cheap).
  Publishes are framed here (``HPUB``, byte for byte what ``Client.publish`` writes) and appended to
  nats-py's write buffer directly — several times cheaper per message than ``Client.publish``, which
  re-validates the subject and re-encodes the header each time. This uses private attributes of
  nats-py's client (``_pending``, ``_pending_data_size``, ``_flush_pending``); if they are missing (another
  nats-py version) or the server lacks header support, ``send`` falls back to ``Client.publish``.
* **publish mode.** ``send`` appends to nats-py's write buffer (its flusher writes batches to the socket);
  ``flush`` — called once per fan-out — does one PING/PONG round trip confirming the server has taken
  everything sent before it. A flush that fails or times out fails the whole batch (the coordinator marks
  those identities ``unavailable`` / ``timeout``): a disconnect may lose buffered messages, or deliver
  them after a reconnect, so a failed confirmation is reported as failed.
* **ack mode.** ``send`` is a request/reply bounded by ``timeout``; the inbox replies on receipt, before
  the caller reads the message. "No responders" (nobody subscribed) is ``no_listener`` at once; retries
  with backoff are the coordinator's (``Config.send_retries``).
* **Clusters.** ``servers`` may list several servers of one cluster; ``inbox`` returns once a message sent
  through *every* reachable server reaches the new subscription (see ``_nats_probe``).
* **Disconnects.** nats-py reconnects forever in the background (re-subscribing inboxes). While it is
  disconnected ``send`` fails immediately with ``unavailable`` instead of buffering, and a pending flush
  fails as soon as the connection drops, so a multicast during an outage returns promptly with the
  failures counted. ``disconnects`` / ``reconnects`` count the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import nats.errors as nerr
from nats.aio.client import Client as NatsClient

from mcastlab.backends._nats_probe import InterestProbe, is_probe, write_then_ping
from mcastlab.backends._subjects import (
    HEADER,
    HpubFramer,
    check_subject_prefix,
    encode_token,
    header_value,
    parse_header,
)
from mcastlab.backends.base import ERROR, NO_LISTENER, TIMEOUT, UNAVAILABLE, Capabilities, Message
from mcastlab.backends.memory import MemoryInbox
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    DeliveryError,
    OperationTimeoutError,
)

if TYPE_CHECKING:
    from mcastlab.runtime.base import Runtime

log = logging.getLogger("mcastlab.backends.nats")
_SPILL_BYTES = 1 << 20  # write the buffer out (yielding to nats-py's flusher) beyond this many bytes

_UNAVAILABLE_ERRORS = (nerr.ConnectionClosedError, nerr.OutboundBufferLimitError, nerr.StaleConnectionError,
                       nerr.ConnectionReconnectingError, nerr.ConnectionDrainingError, nerr.NoServersError,
                       OSError)


NatsInbox = MemoryInbox  # one listener: a mailbox filled (and acknowledged) on receipt


class NatsMessaging:
    """Messaging on NATS; see the module docstring. Shareable: ``open``/``close`` are reference counted."""

    name = "nats"
    modes: Sequence[str] = ("publish", "ack")
    # send and flush bound themselves by their timeout; a publish only appends to a buffer (no window)
    capabilities = Capabilities(self_timed=True, inline_modes=("publish",), publish_batch=True)

    def __init__(self, servers: str | Sequence[str], *, prefix: str = "mcast",
                 user: str | None = None, password: str | None = None, token: str | None = None,
                 tls: ssl.SSLContext | None = None, tls_hostname: str | None = None,
                 connect_timeout: float = 2.0, reconnect_time_wait: float = 0.25,
                 max_reconnect_attempts: int = -1, client_name: str | None = None,
                 pending_size: int = 8 * 1024 * 1024) -> None:
        check_subject_prefix(prefix)
        urls = [servers] if isinstance(servers, str) else list(servers)
        if not urls or not all(isinstance(u, str) and "://" in u for u in urls):
            raise ConfigError(f"servers must be NATS URLs such as 'nats://127.0.0.1:4222', got {servers!r}",
                              key="servers")
        self.servers = urls
        self.prefix = prefix
        self._connect_kw: dict[str, Any] = {
            "user": user, "password": password, "token": token, "tls": tls, "tls_hostname": tls_hostname,
            "connect_timeout": connect_timeout, "reconnect_time_wait": reconnect_time_wait,
            "max_reconnect_attempts": max_reconnect_attempts, "name": client_name,
            "pending_size": pending_size,
        }
        self._nc: Any = None
        self._fast = False  # frame publishes ourselves (see the module docstring)
        self._framer = HpubFramer(prefix)
        self._runtime: Runtime | None = None
        self._probe: InterestProbe | None = None
        self._opens = 0
        self._down: asyncio.Event | None = None
        # per fan-out (message id): the disconnect count when its first publish was buffered; a flush
        # confirms a fan-out only if no disconnect happened since, whatever other fan-outs did
        self._buffered_at: dict[str, int] = {}
        self.disconnects = 0
        self.reconnects = 0
        self.errors = 0
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"NatsMessaging({self.servers!r}, prefix={self.prefix!r})"

    def subject_for(self, identity: str) -> str:
        """The inbox subject of ``identity`` (what a device subscribes to; see docs/wire-protocol.md)."""
        return f"{self.prefix}.{encode_token(identity)}"

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Runtime) -> None:
        """Connect (first open); raises BackendUnavailableError if no server answers."""
        self._opens += 1
        if self._opens > 1:
            return
        self._runtime = runtime
        self._down = asyncio.Event()
        kw = {k: v for k, v in self._connect_kw.items() if v is not None}
        nc = NatsClient()
        # nats-py retries a failed *initial* connect forever when reconnects are unlimited: bound it here
        kwc = self._connect_kw
        limit = (kwc["connect_timeout"] + kwc["reconnect_time_wait"]) * len(self.servers)
        try:
            await asyncio.wait_for(nc.connect(
                self.servers, allow_reconnect=True, error_cb=self._on_error,
                disconnected_cb=self._on_disconnect, reconnected_cb=self._on_reconnect, **kw), limit + 0.5)
        except BaseException as exc:
            self._opens = 0
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(nc.close(), 1.0)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise BackendUnavailableError(f"cannot connect to NATS at {self.servers}: {exc!r}",
                                          backend=self.name) from None
        self._nc = nc
        self._probe = InterestProbe(self.servers, self._connect_kw, connect_timeout=kwc["connect_timeout"])
        self._fast = (isinstance(getattr(nc, "_pending", None), list) and hasattr(nc, "_flush_pending")
                      and isinstance(getattr(nc, "_pending_data_size", None), int)
                      and bool(getattr(nc, "_server_info", {}).get("headers")))

    async def close(self) -> None:
        """Release one open; the last one closes the connection."""
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens:
            return
        nc, self._nc, probe, self._probe = self._nc, None, self._probe, None
        if probe is not None:
            await probe.close()
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)

    async def _on_error(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = exc
        log.warning("NATS client error (%d so far): %r", self.errors, exc, exc_info=exc)

    async def _on_disconnect(self) -> None:
        self.disconnects += 1
        if self._opens:  # not our own close
            log.warning("NATS disconnected from %s; reconnecting in the background", self.servers)
        if self._down is not None:
            self._down.set()

    async def _on_reconnect(self) -> None:
        self.reconnects += 1
        if self._down is not None:
            self._down.clear()

    def _conn(self) -> Any:
        nc = self._nc
        if nc is None:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        return nc

    @property
    def connected(self) -> bool:
        """True while the connection to a server is up."""
        return self._nc is not None and self._nc.is_connected

    # ------------------------------------------------------------------ sending
    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        """Publish (buffered) or request/reply (acked) one message; failures raise DeliveryError."""
        nc = self._nc
        if nc is None:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        if not nc.is_connected:
            raise DeliveryError(f"NATS is disconnected; not sent to {message.identity!r}", status=UNAVAILABLE,
                                backend=self.name)
        if mode == "publish":
            if message.id not in self._buffered_at:
                self._note_buffered(message.id)
            if self._fast:  # the hot path of a fan-out: frame it, append it, done
                frame = self._frame(message, nc.max_payload)
                nc._pending.append(frame)
                nc._pending_data_size += len(frame)
                stats = nc.stats
                stats["out_msgs"] += 1
                stats["out_bytes"] += len(message.payload)
                if nc._pending_data_size > _SPILL_BYTES:
                    await self._spill(nc, message)
                return
        subject = f"{self.prefix}.{encode_token(message.identity)}"
        headers = {HEADER: header_value(message)}
        try:
            if mode == "publish":
                await nc.publish(subject, message.payload, headers=headers)
            else:
                await nc.request(subject, message.payload, timeout=timeout, headers=headers)
        except nerr.NoRespondersError:
            raise DeliveryError(f"no listener on {message.identity!r}", status=NO_LISTENER,
                                backend=self.name) from None
        except nerr.TimeoutError:
            status = TIMEOUT if nc.is_connected else UNAVAILABLE
            raise DeliveryError(f"no ack from {message.identity!r} within {timeout} s", status=status,
                                backend=self.name) from None
        except _UNAVAILABLE_ERRORS as exc:
            raise DeliveryError(f"NATS unavailable sending to {message.identity!r}: {exc!r}",
                                status=UNAVAILABLE, backend=self.name) from None
        except Exception as exc:
            raise DeliveryError(f"sending to {message.identity!r} failed: {exc!r}", status=ERROR,
                                backend=self.name) from None

    async def publish_batch(self, message_id: str, payload: bytes, identities: Sequence[str], *,
                            sent_at: float) -> dict[str, str]:
        """Buffer one publish per identity in a single pass; returns only the failures' statuses.

        Every frame of a fan-out shares its header and sizes, so only the subject is formatted per
        identity: this is what lets a 10,000-recipient multicast keep up with a bare publish loop.
        """
        nc = self._nc
        if nc is None:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        if not nc.is_connected:
            return dict.fromkeys(identities, UNAVAILABLE)
        if not self._fast:
            return await self._publish_each(message_id, payload, identities, sent_at)
        if message_id not in self._buffered_at:
            self._note_buffered(message_id)
        first = Message(message_id, payload, identities[0] if identities else "", sent_at)
        try:
            self._frame(first, nc.max_payload)  # checks the size
        except DeliveryError as exc:
            return dict.fromkeys(identities, exc.status)
        tail, _ = self._framer.tail(first)
        subjects = self._framer.subjects_of(identities)
        # frames differ only in their subject: each chunk is one join of the subjects, with the shared
        # tail and the next frame's "HPUB " in between, about _SPILL_BYTES long
        sep = tail + b"HPUB "
        step = max(1, _SPILL_BYTES // (len(sep) + max(map(len, subjects)))) if subjects else 1
        for lo in range(0, len(subjects), step):
            chunk = sep.join(subjects[lo : lo + step])
            nc._pending += (b"HPUB ", chunk, tail)  # nats-py joins its pending list when it writes
            nc._pending_data_size += len(chunk) + len(sep)
            if lo + step < len(subjects):
                try:
                    await self._spill(nc, first)
                except DeliveryError as exc:  # the buffer did not go out: none of the batch is confirmed
                    return dict.fromkeys(identities, exc.status)
        nc.stats["out_msgs"] += len(identities)
        nc.stats["out_bytes"] += len(payload) * len(identities)
        return {}

    async def _publish_each(self, message_id: str, payload: bytes, identities: Sequence[str],
                            sent_at: float) -> dict[str, str]:
        failed: dict[str, str] = {}
        for ident in identities:
            try:
                await self.send(Message(message_id, payload, ident, sent_at), mode="publish", timeout=5.0)
            except DeliveryError as exc:
                failed[ident] = exc.status
        return failed

    def _frame(self, message: Message, max_payload: int) -> bytes:
        """One ``HPUB`` frame (see :class:`~mcastlab.backends._subjects.HpubFramer`); DeliveryError if
        the server would refuse its size."""
        frame, size = self._framer.frame(message)
        if size > max_payload:
            raise DeliveryError(f"message to {message.identity!r} is {size} bytes; the NATS server accepts "
                                f"{max_payload}", status=ERROR, backend=self.name)
        return frame

    async def _spill(self, nc: Any, message: Message) -> None:
        """Let nats-py's flusher write out a large buffer (bounds memory on huge fan-outs)."""
        try:
            await nc._flush_pending(force_flush=True)
        except Exception as exc:
            raise DeliveryError(f"NATS unavailable sending to {message.identity!r}: {exc!r}",
                                status=UNAVAILABLE, backend=self.name) from None

    def _note_buffered(self, message_id: str) -> None:
        if len(self._buffered_at) >= 4096:  # publishes never flushed (direct send() use): forget the oldest
            del self._buffered_at[next(iter(self._buffered_at))]
        self._buffered_at[message_id] = self.disconnects

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        """Confirm every buffered publish with one PING/PONG; fails fast if the connection drops."""
        nc = self._conn()
        down = self._down
        if message_id is None:  # everything buffered so far
            start = min(self._buffered_at.values(), default=self.disconnects)
            self._buffered_at.clear()
        else:
            start = self._buffered_at.pop(message_id, self.disconnects)
        if start != self.disconnects:
            raise BackendUnavailableError("NATS reconnected since these messages were sent; they may be lost",
                                          backend=self.name)
        if not nc.is_connected or down is None or down.is_set():
            raise BackendUnavailableError("NATS is disconnected; buffered messages are not confirmed",
                                          backend=self.name)
        flushing = asyncio.ensure_future(write_then_ping(nc, timeout))
        dropped = asyncio.ensure_future(down.wait())
        try:
            done, _ = await asyncio.wait((flushing, dropped), timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
            if not flushing.done():
                flushing.cancel()
        if flushing in done and not flushing.cancelled():
            exc = flushing.exception()
            if exc is None:
                # nats-py's flush returns quietly when its read loop has just died: only a connection
                # that stayed up (no disconnect since the first send) confirms anything
                if nc.is_connected and self.disconnects == start:
                    return
                raise BackendUnavailableError("NATS connection dropped before the flush was confirmed",
                                              backend=self.name)
            if isinstance(exc, nerr.TimeoutError) and nc.is_connected:
                raise OperationTimeoutError(f"NATS flush not confirmed within {timeout} s", backend=self.name)
            if isinstance(exc, _UNAVAILABLE_ERRORS | nerr.TimeoutError):
                raise BackendUnavailableError(f"NATS flush failed: {exc!r}", backend=self.name)
            raise BackendError(f"NATS flush failed: {exc!r}", backend=self.name)
        if dropped in done:
            raise BackendUnavailableError("NATS connection dropped before the flush was confirmed",
                                          backend=self.name)
        raise OperationTimeoutError(f"NATS flush not confirmed within {timeout} s", backend=self.name)

    # ------------------------------------------------------------------ receiving
    @asynccontextmanager
    async def inbox(self, identity: str) -> AsyncIterator[MemoryInbox]:
        """Subscribe to ``identity``'s subject; yields once every reachable server routes to it."""
        nc, probe, runtime = self._conn(), self._probe, self._runtime
        assert runtime is not None and probe is not None
        box = MemoryInbox(identity, runtime)
        now = runtime.now
        token = secrets.token_hex(8).encode()

        async def on_message(msg: Any) -> None:
            probing = is_probe(msg)  # an interest probe (``_nats_probe``): answered with the token, not kept
            if msg.reply:
                with contextlib.suppress(Exception):
                    await nc.publish(msg.reply, token if probing else b"")
            if probing:
                return
            hdr = msg.headers.get(HEADER) if msg.headers else None
            mid, sent_at, attempt, redelivery = parse_header(hdr)
            box.deliver(Message(mid, msg.data, identity, sent_at, attempt, redelivery, now()))

        try:
            sub = await nc.subscribe(self.subject_for(identity), cb=on_message)
            await write_then_ping(nc, 5)  # a bare flush's PING can overtake the still-buffered SUB
        except Exception as exc:
            raise BackendUnavailableError(f"cannot subscribe {identity!r}'s inbox: {exc!r}",
                                          backend=self.name) from None
        try:
            await probe.confirm(nc, self.subject_for(identity), token)
            yield box
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


__all__ = ["NatsInbox", "NatsMessaging"]
