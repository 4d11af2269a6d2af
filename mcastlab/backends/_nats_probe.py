"""Confirm that a new NATS subscription is reachable through every server of a cluster.

In a NATS cluster a subscription is made on one server and announced to the others over the routes
asynchronously; a message published on another server before the announcement arrives is dropped (no
interest there yet). ``nc.flush()`` only proves the *local* server has the subscription. So
:meth:`NatsMessaging.inbox` does not return before this module has proved, for every other server it
can reach, that a message published there arrives at the new subscription:

* It keeps one small *probe* connection per other server (the configured URLs plus those the cluster
  advertised, ``Client.servers``), pinned to that server (no reconnects, no server discovery), each with a
  wildcard subscription for replies.
* Per server, it publishes a request on the inbox's subject through the probe connection, with the
  header ``Mcast-Probe`` and an empty payload. The new subscription's callback answers a probe with its own
  random token (and never delivers it to the inbox); an answer carrying *this* subscription's token proves
  the path ``that server -> route -> our server -> our subscription`` exists. A "no responders" status
  (the server knows no interest yet) or silence means "not yet": the probe is repeated (short pauses,
  growing) until answered or ``timeout``; then the inbox fails with BackendUnavailableError.
* A server the probe cannot connect to is skipped: it is down, and it learns every subscription from its
  routes when it comes back.

Devices listening on the same subject see probe messages too; the wire contract says to ignore messages
carrying ``Mcast-Probe`` (see docs/wire-protocol.md). With one server there is nothing to probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from nats.aio.client import Client as NatsClient

from mcastlab.errors import BackendUnavailableError

PROBE_HEADER = "Mcast-Probe"
_STATUS = "Status"
_NO_RESPONDERS = "503"


async def write_then_ping(nc: Any, timeout: float) -> None:
    """Write out nats-py's buffer, *then* PING: nats-py writes a PING straight to the socket, ahead of
    still-buffered publishes and subscriptions, so its PONG alone would not confirm them."""
    write_out = getattr(nc, "_flush_pending", None)
    if write_out is not None:
        await write_out(force_flush=True)
    await nc.flush(timeout)


def is_probe(msg: Any) -> bool:
    """True if ``msg`` is an interest probe (answer it with the subscription's token, do not deliver)."""
    return bool(msg.headers) and PROBE_HEADER in msg.headers


async def _quiet(_exc: BaseException) -> None:
    """A probe connection's errors are its server going away: nothing to report (it is skipped)."""


async def _none() -> None:
    pass


async def _flush(nc: Any, timeout: float) -> None:
    """Write out nats-py's buffer, then PING: its PING goes straight to the socket and could overtake
    buffered SUB/PUB lines (then the PONG would confirm nothing)."""
    await nc._flush_pending(force_flush=True)
    await nc.flush(timeout)


def _key(host: str | None, port: int | None) -> tuple[str, int]:
    return (host or "127.0.0.1", port or 4222)


class _ProbeConn:
    """A connection pinned to one server, with a wildcard reply subscription."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.nc: Any = NatsClient()
        self.prefix = ""
        self.waiting: dict[str, tuple[bytes, asyncio.Future[bool]]] = {}
        self.seq = itertools.count()

    async def connect(self, kw: dict[str, Any], timeout: float) -> None:
        connecting = self.nc.connect([self.url], allow_reconnect=False, connect_timeout=timeout,
                                     error_cb=_quiet, disconnected_cb=_none, closed_cb=_none, **kw)
        await asyncio.wait_for(connecting, timeout + 0.5)
        self.prefix = self.nc.new_inbox()
        await self.nc.subscribe(self.prefix + ".*", cb=self._on_reply)
        await _flush(self.nc, timeout)

    async def _on_reply(self, msg: Any) -> None:
        got = self.waiting.get(msg.subject)
        if got is None or got[1].done():
            return
        token, fut = got
        if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            fut.set_result(False)  # this server knows no interest in the subject yet
        elif msg.data == token:
            fut.set_result(True)  # our subscription answered, through this server

    async def probe(self, subject: str, token: bytes, wait: float) -> bool:
        reply = f"{self.prefix}.{next(self.seq)}"
        fut = asyncio.get_running_loop().create_future()
        self.waiting[reply] = (token, fut)
        try:
            await self.nc.publish(subject, b"", reply=reply, headers={PROBE_HEADER: "1"})
            await _flush(self.nc, wait)
            return await asyncio.wait_for(fut, wait)
        except Exception:
            return False
        finally:
            self.waiting.pop(reply, None)

    @property
    def usable(self) -> bool:
        return self.nc.is_connected


class InterestProbe:
    """Probe connections to a cluster's servers; see the module docstring."""

    def __init__(self, servers: Iterable[str], connect_kw: dict[str, Any], *, timeout: float = 5.0,
                 connect_timeout: float = 1.0) -> None:
        self._configured = list(servers)
        self._kw = {k: v for k, v in connect_kw.items()
                    if k in ("user", "password", "token", "tls", "tls_hostname") and v is not None}
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._conns: dict[tuple[str, int], _ProbeConn] = {}
        self._lock = asyncio.Lock()
        self.probes = 0  # probe messages sent (more than servers x inboxes: interest still propagating)

    def _targets(self, nc: Any) -> dict[tuple[str, int], str]:
        urls: dict[tuple[str, int], str] = {}
        for url in self._configured:
            parts = urlsplit(url)
            urls.setdefault(_key(parts.hostname, parts.port), url)
        for uri in nc.servers:
            urls.setdefault(_key(uri.hostname, uri.port), f"{uri.scheme}://{uri.hostname}:{uri.port}")
        here = nc.connected_url
        if here is not None:
            urls.pop(_key(here.hostname, here.port), None)
        return urls

    async def _conn(self, key: tuple[str, int], url: str) -> _ProbeConn | None:
        async with self._lock:
            conn = self._conns.get(key)
            if conn is not None and conn.usable:
                return conn
            conn = _ProbeConn(url)
            try:
                await conn.connect(self._kw, self._connect_timeout)
            except Exception:
                with contextlib.suppress(Exception):
                    await conn.nc.close()
                self._conns.pop(key, None)
                return None  # down: it learns the subscription from its routes when it comes back
            self._conns[key] = conn
            return conn

    async def confirm(self, nc: Any, subject: str, token: bytes) -> None:
        """Return once a message published on ``subject`` through every other reachable server reaches
        the subscription answering probes with ``token``; BackendUnavailableError after ``timeout``."""
        targets = self._targets(nc)
        if targets:
            await asyncio.gather(*(self._through(key, url, subject, token) for key, url in targets.items()))

    async def _through(self, key: tuple[str, int], url: str, subject: str, token: bytes) -> None:
        conn = await self._conn(key, url)
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause = 0.001
        while True:
            self.probes += 1
            if await conn.probe(subject, token, min(0.25, max(0.01, deadline - loop.time()))):
                return
            if not conn.usable:
                return  # that server went away meanwhile: nothing to confirm through it
            if loop.time() >= deadline:
                raise BackendUnavailableError(
                    f"the subscription to {subject!r} did not become reachable through {url} within "
                    f"{self.timeout} s (NATS cluster routes down?)", backend="nats")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def close(self) -> None:
        """Close every probe connection."""
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.nc.close(), 1.0)


__all__ = ["PROBE_HEADER", "InterestProbe", "is_probe", "write_then_ping"]
