"""RedisPubSubMessaging: the spec's second messaging slot, on Redis pub/sub.

Theory of operation
-------------------
* **Channels.** Each identity's inbox is the channel ``<prefix>inbox:<enc(identity)>`` (``enc`` as in
  the registry: injective, only ``[A-Za-z0-9_-]`` and ``%XX``), subscribed with plain ``SUBSCRIBE``, never
  a pattern, so no name can listen to another identity's channel. Pub/sub channels are global to a Redis
  server (not per database): the prefix is what isolates tenants.
* **Wire format.** Redis messages have no headers, so the payload is framed by a small binary envelope
  (``_subjects.pack_envelope``): message id, send time, attempt, redelivery flag and, in ack mode, a reply
  tag; the payload follows as-is.
* **publish mode.** ``PUBLISH`` through the auto-pipeline (concurrent sends share round trips); a send is
  delivered once Redis has accepted it, so ``flush`` has nothing left to confirm.
* **ack mode.** ``PUBLISH`` returns how many subscribers got the message: 0 is ``no_listener`` at once.
  Otherwise the receiving inbox publishes the correlation id to this backend's reply channel
  ``<prefix>ack:<random>`` on receipt, and ``send`` waits for it up to ``timeout``.
* **Receiving.** One dedicated connection per backend object carries all its subscriptions (inboxes and
  the reply channel); a reader task dispatches messages. After a connection loss it reconnects with
  backoff and re-subscribes everything; messages published meanwhile are lost (pub/sub keeps nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcastlab.backends._redis_pipe import AutoPipeline, make_pool
from mcastlab.backends._subjects import check_key_prefix, encode_token, pack_envelope, unpack_envelope
from mcastlab.backends.base import ERROR, NO_LISTENER, TIMEOUT, UNAVAILABLE, Capabilities, Message
from mcastlab.backends.memory import MemoryInbox
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ClosedError,
    DeliveryError,
    OperationTimeoutError,
)
from mcastlab.policy import Backoff

if TYPE_CHECKING:
    from mcastlab.runtime.base import Runtime

RedisInbox = MemoryInbox  # one listener: a mailbox filled (and acknowledged) on receipt

log = logging.getLogger("mcastlab.backends.redis_pubsub")


class RedisPubSubMessaging:
    """Messaging on Redis pub/sub; see the module docstring. ``open``/``close`` are reference counted."""

    name = "redis-pubsub"
    modes: Sequence[str] = ("publish", "ack")
    capabilities = Capabilities(self_timed=True)

    def __init__(self, url: str, *, prefix: str = "mcast:",
                 username: str | None = None, password: str | None = None, db: int | None = None,
                 tls: bool | None = None, tls_ca_certs: str | None = None, tls_certfile: str | None = None,
                 tls_keyfile: str | None = None, tls_verify: bool = True, socket_timeout: float = 5.0,
                 connect_timeout: float = 2.0, lanes: int = 2, max_batch: int = 1024) -> None:
        check_key_prefix(prefix)
        self.url = url
        self.prefix = prefix
        self._pool_kw: dict[str, Any] = {
            "username": username, "password": password, "db": db, "tls": tls, "tls_ca_certs": tls_ca_certs,
            "tls_certfile": tls_certfile, "tls_keyfile": tls_keyfile, "tls_verify": tls_verify,
            "socket_timeout": socket_timeout, "connect_timeout": connect_timeout,
            "max_connections": lanes + 8,
        }
        make_pool(url, **self._pool_kw)
        self._lanes, self._max_batch, self._timeout = lanes, max_batch, socket_timeout
        self._pool: Any = None
        self._pipe: AutoPipeline | None = None
        self._runtime: Runtime | None = None
        self._opens = 0
        self._reply = f"{prefix}ack:{secrets.token_hex(8)}".encode()
        self._acks: dict[bytes, asyncio.Future[None]] = {}
        self._corr = itertools.count(1)
        self._boxes: dict[bytes, list[MemoryInbox]] = {}
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._sub_conn: Any = None
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"RedisPubSubMessaging({self.url!r}, prefix={self.prefix!r})"

    def channel_for(self, identity: str) -> str:
        """The inbox channel of ``identity``."""
        return f"{self.prefix}inbox:{encode_token(identity)}"

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Runtime) -> None:
        """Connect (first open) and subscribe the reply channel; BackendUnavailableError if Redis is down."""
        self._opens += 1
        if self._opens > 1:
            return
        self._runtime = runtime
        self._pool = make_pool(self.url, **self._pool_kw)
        self._pipe = AutoPipeline(self._pool, backend=self.name, lanes=self._lanes, max_batch=self._max_batch,
                                  timeout=self._timeout)
        self._pipe.start()
        self._sub_conn = self._pool.make_connection()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        try:
            await self._pipe.call("PING")  # fail fast (and typed) if Redis is unreachable
            await self._subscribe(self._reply)
        except BaseException:
            self._opens = 1
            await self.close()
            raise

    async def close(self) -> None:
        """Release one open; the last one stops the reader and disconnects."""
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens:
            return
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            await pipe.close()
        if self._sub_conn is not None:
            with contextlib.suppress(Exception):
                await self._sub_conn.disconnect()
        if self._pool is not None:
            await self._pool.disconnect()
        for fut in self._acks.values():
            if not fut.done():
                fut.cancel()
        self._acks.clear()
        self._boxes.clear()

    def _p(self) -> AutoPipeline:
        if self._pipe is None:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        return self._pipe

    # ------------------------------------------------------------------ sending
    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        """PUBLISH one message; in ack mode also wait for the inbox's acknowledgement."""
        pipe = self._p()
        channel = self.channel_for(message.identity)
        corr = b""
        fut: asyncio.Future[None] | None = None
        if mode == "ack":
            corr = str(next(self._corr)).encode()
            fut = asyncio.get_running_loop().create_future()
            self._acks[corr] = fut
        try:
            async with asyncio.timeout(timeout):
                data = pack_envelope(message, self._reply + b"\n" + corr if corr else b"")
                receivers = await pipe.call("PUBLISH", channel, data)
                if fut is None:
                    return
                if not receivers:
                    raise DeliveryError(f"no listener on {message.identity!r}", status=NO_LISTENER,
                                        backend=self.name)
                await fut
        except DeliveryError:
            raise
        except (TimeoutError, OperationTimeoutError):
            raise DeliveryError(f"sending to {message.identity!r} not confirmed within {timeout} s",
                                status=TIMEOUT, backend=self.name) from None
        except (BackendUnavailableError, ClosedError) as exc:
            raise DeliveryError(f"Redis unavailable sending to {message.identity!r}: {exc}",
                                status=UNAVAILABLE, backend=self.name) from None
        except Exception as exc:
            raise DeliveryError(f"sending to {message.identity!r} failed: {exc!r}", status=ERROR,
                                backend=self.name) from None
        finally:
            if corr:
                self._acks.pop(corr, None)

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        """Nothing to do: every send already waited for Redis to accept it."""

    # ------------------------------------------------------------------ receiving
    @asynccontextmanager
    async def inbox(self, identity: str) -> AsyncIterator[MemoryInbox]:
        """Subscribe to ``identity``'s channel (confirmed by Redis before yielding)."""
        self._p()
        assert self._runtime is not None
        channel = self.channel_for(identity).encode()
        box = MemoryInbox(identity, self._runtime)
        self._boxes.setdefault(channel, []).append(box)
        try:
            await self._subscribe(channel)
            yield box
        finally:
            boxes = self._boxes.get(channel, [])
            if box in boxes:
                boxes.remove(box)
            if not boxes:
                self._boxes.pop(channel, None)
                conn = self._sub_conn
                if conn is not None and conn.is_connected:
                    with contextlib.suppress(Exception):
                        await conn.send_command("UNSUBSCRIBE", channel, check_health=False)

    async def _subscribe(self, channel: bytes, timeout: float = 5.0) -> None:
        """Subscribe on the reader's connection and wait until Redis confirms it."""
        fut = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(fut)
        conn = self._sub_conn
        try:
            if conn.is_connected:
                await conn.send_command("SUBSCRIBE", channel, check_health=False)
            # else: the reader re-subscribes every wanted channel when it (re)connects
            await asyncio.wait_for(fut, timeout)
        except (TimeoutError, OSError, ConnectionError) as exc:
            raise BackendUnavailableError(f"cannot subscribe to {channel!r}: {exc!r}",
                                          backend=self.name) from None
        except Exception as exc:
            raise BackendError(f"cannot subscribe to {channel!r}: {exc!r}", backend=self.name) from None
        finally:
            waiting = self._confirm.get(channel, [])
            if fut in waiting:
                waiting.remove(fut)

    def _wanted(self) -> list[bytes]:
        return [self._reply, *self._boxes]

    async def _read_loop(self) -> None:
        conn, backoff, failures = self._sub_conn, Backoff(0.05, 1.0), 0
        while True:
            try:
                if not conn.is_connected:
                    await conn.connect()
                    await conn.send_command("SUBSCRIBE", *self._wanted(), check_health=False)
                    if failures:
                        self.reconnects += 1
                failures = 0
                while True:
                    self._dispatch(await conn.read_response(timeout=math.inf))
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.warning("Redis pub/sub reader lost its connection (%d in a row); reconnecting", failures,
                            exc_info=True)
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                await asyncio.sleep(backoff.compute(failures))

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind, channel, data = reply[0], reply[1], reply[2]
        if kind == b"message":
            if channel == self._reply:
                fut = self._acks.get(data)
                if fut is not None and not fut.done():
                    fut.set_result(None)
                return
            boxes = self._boxes.get(channel)
            if not boxes:
                return
            mid, sent_at, attempt, redelivery, reply_tag, payload = unpack_envelope(data)
            if reply_tag:
                self._ack(reply_tag)
            assert self._runtime is not None
            msg = Message(mid, payload, boxes[0].identity, sent_at, attempt, redelivery, self._runtime.now())
            for box in boxes:
                box.deliver(msg)
        elif kind == b"subscribe":
            for fut in self._confirm.pop(channel, []):
                if not fut.done():
                    fut.set_result(None)

    def _ack(self, reply_tag: bytes) -> None:
        channel, _, corr = reply_tag.partition(b"\n")
        if not channel.startswith(f"{self.prefix}ack:".encode()) or self._pipe is None:
            return  # only ever answer on our own prefix's reply channels
        with contextlib.suppress(Exception):
            self._pipe.call("PUBLISH", channel, corr).add_done_callback(_retrieve)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Consume a fire-and-forget future's outcome (a lost ack just shows up as a timeout)."""
    if not fut.cancelled():
        fut.exception()


__all__ = ["RedisInbox", "RedisPubSubMessaging"]
