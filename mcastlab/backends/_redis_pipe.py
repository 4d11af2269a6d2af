"""Redis plumbing shared by the registry and the pub/sub messaging: connection options, error
translation and an auto-pipeline.

Auto-pipelining: every command is queued with a future; a few *lanes* (each one dedicated connection)
take everything queued so far and send it as one pipeline, so N concurrent callers cost about one round
trip instead of N. While a lane waits for its replies, new commands queue up for the next free lane —
batches grow with load by themselves (like Nagle's algorithm, without a timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    McastlabError,
    OperationTimeoutError,
)

_pack_one: Any
try:  # hiredis packs a command ~20x faster than redis-py's pure-Python packer
    from hiredis import pack_command as _pack_one
except ImportError:  # pragma: no cover - hiredis is part of the live extras
    _pack_one = None


def make_pool(url: str, *, username: str | None = None, password: str | None = None, db: int | None = None,
              tls: bool | None = None, tls_ca_certs: str | None = None, tls_certfile: str | None = None,
              tls_keyfile: str | None = None, tls_verify: bool = True, socket_timeout: float = 5.0,
              connect_timeout: float = 2.0, max_connections: int = 32) -> aioredis.ConnectionPool:
    """A redis.asyncio pool from a ``redis://``, ``rediss://`` or ``unix://`` URL plus explicit options.

    Explicit options win over the URL. Client-side retries are off: our callers decide what to retry.
    """
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"Redis url must start with redis://, rediss:// or unix://, got {url!r}", key="url")
    if db is not None and (isinstance(db, bool) or not isinstance(db, int) or db < 0):
        raise ConfigError(f"Redis db must be an int >= 0, got {db!r}", key="db")
    kw: dict[str, Any] = {
        "socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout,
        "retry": Retry(NoBackoff(), 0), "max_connections": max_connections, "health_check_interval": 0,
        "protocol": 2,  # raw replies are parsed here; RESP2 keeps their shapes simple and stable
    }
    given = (("username", username), ("password", password), ("db", db))
    explicit = {k: v for k, v in given if v is not None}
    use_tls = url.startswith("rediss://") if tls is None else tls
    if use_tls:
        if url.startswith("unix://"):
            raise ConfigError("TLS is not available over a unix socket", key="tls")
        kw["connection_class"] = aioredis.SSLConnection
        kw["ssl_cert_reqs"] = "required" if tls_verify else "none"
        kw["ssl_check_hostname"] = tls_verify
        for key, value in (("ssl_ca_certs", tls_ca_certs), ("ssl_certfile", tls_certfile),
                           ("ssl_keyfile", tls_keyfile)):
            if value is not None:
                kw[key] = value
    try:
        pool = aioredis.ConnectionPool.from_url(url, **kw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid Redis url or options {url!r}: {exc}", key="url") from None
    pool.connection_kwargs.update(explicit)  # from_url lets the URL win; here explicit options win
    return pool


def translate(exc: BaseException, backend: str, what: str = "") -> McastlabError:
    """Map a redis/OS/asyncio exception to the mcastlab error of the same direction."""
    if isinstance(exc, McastlabError):
        return exc
    where = f"{what}: " if what else ""
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return OperationTimeoutError(f"{where}Redis did not answer in time ({exc})", backend=backend)
    if isinstance(exc, RedisConnectionError | OSError):
        return BackendUnavailableError(f"{where}Redis is unreachable ({exc})", backend=backend)
    if isinstance(exc, RedisError):
        return BackendError(f"{where}Redis error: {exc}", backend=backend)
    return BackendError(f"{where}{type(exc).__name__}: {exc}", backend=backend)


class _Unit(tuple):  # type: ignore[type-arg]
    """Several commands queued as one item: always sent back to back on one connection."""

    __slots__ = ()


class AutoPipeline:
    """Queue commands from any number of concurrent callers; send them in pipelines on a few lanes."""

    def __init__(self, pool: aioredis.ConnectionPool, *, backend: str, lanes: int = 2,
                 max_batch: int = 1024, timeout: float = 5.0) -> None:
        self._pool = pool
        self._backend = backend
        self._n_lanes = lanes
        self._max_batch = max_batch
        self._timeout = timeout
        self._queue: deque[tuple[tuple[Any, ...], asyncio.Future[Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: list[Any] = []
        self._closed = False
        self.batches = 0  # pipelines sent (commands / batches = mean batch size)
        self.commands = 0
        self.busy_s = 0.0  # lane-seconds spent sending batches and reading their replies

    def start(self) -> None:
        """Start the lanes on the running loop."""
        self._closed = False
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Lane connections get no socket timeout of their own: _run bounds each whole batch instead
        # (cheaper than a timer per reply, and no asyncio.wait_for, which can swallow a cancel on 3.11).
        kwargs = {**self._pool.connection_kwargs, "socket_timeout": None}
        for _ in range(self._n_lanes):
            conn = self._pool.connection_class(**kwargs)
            self._conns.append(conn)
            self._tasks.append(loop.create_task(self._lane(conn)))

    async def close(self) -> None:
        """Stop the lanes, fail whatever is still queued and disconnect."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        tasks, self._tasks = self._tasks, []
        for _ in range(3):  # Python 3.11's wait_for can swallow a cancel: insist, never hang
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(ClosedError(f"the {self._backend} backend was closed"))
        for conn in self._conns:
            with contextlib.suppress(Exception):
                await conn.disconnect()
        self._conns.clear()

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command; the future resolves to its reply (or a translated error)."""
        return self._enqueue(args)

    def call_many(self, *commands: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue commands that must go out back to back on one connection; resolves to their replies
        (or fails with the first error, after every reply has been read)."""
        return self._enqueue(_Unit(commands))

    def _enqueue(self, item: tuple[Any, ...]) -> asyncio.Future[Any]:
        if self._closed or self._wake is None:
            raise ClosedError(f"the {self._backend} backend is not open; use it through a Coordinator")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        self._wake.set()
        return fut

    async def script(self, sha: str, body: str, *args: Any) -> Any:
        """EVALSHA, loading the script first if the server does not know it (e.g. after a restart)."""
        try:
            return await self.call("EVALSHA", sha, *args)
        except NoScriptError:
            await self.call("SCRIPT", "LOAD", body)
            return await self.call("EVALSHA", sha, *args)

    async def _lane(self, conn: Any) -> None:
        wake, queue = self._wake, self._queue
        assert wake is not None
        while not self._closed:
            await wake.wait()
            if not queue:
                if not self._closed:
                    wake.clear()
                continue
            n = min(len(queue), self._max_batch)
            batch = [queue.popleft() for _ in range(n)]
            if not queue:
                wake.clear()
            t0 = time.perf_counter()
            try:
                await self._run(conn, batch)
            finally:
                self.busy_s += time.perf_counter() - t0

    async def _run(self, conn: Any, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self.batches += 1
        done = 0
        try:
            async with asyncio.timeout(self._timeout):
                cmds: list[tuple[Any, ...]] = []
                for args, _ in batch:
                    if type(args) is _Unit:
                        cmds.extend(args)
                    else:
                        cmds.append(args)
                self.commands += len(cmds)
                reader = getattr(conn, "_reader", None)
                if reader is not None and reader.at_eof():  # the server closed it while idle (restart,
                    await conn.disconnect()                 # idle timeout): reconnect, do not fail a batch
                data = b"".join(map(_pack_one, cmds)) if _pack_one is not None else conn.pack_commands(cmds)
                await conn.send_packed_command(data, check_health=False)
                for args, fut in batch:
                    if type(args) is _Unit:
                        res, err = await self._read_unit(conn, len(args))
                    else:
                        try:
                            res, err = await conn.read_response(timeout=math.inf), None
                        except ResponseError as exc:
                            res, err = None, exc
                    done += 1
                    if not fut.done():
                        if err is None:
                            fut.set_result(res)
                        else:
                            fut.set_exception(err)
        except asyncio.CancelledError:
            self._fail(batch[done:], ClosedError(f"the {self._backend} backend was closed"))
            with contextlib.suppress(Exception):
                await conn.disconnect()
            raise
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            self._fail(batch[done:], translate(exc, self._backend))

    @staticmethod
    async def _read_unit(conn: Any, n: int) -> tuple[list[Any], ResponseError | None]:
        replies: list[Any] = []
        first: ResponseError | None = None
        for _ in range(n):
            try:
                replies.append(await conn.read_response(timeout=math.inf))
            except ResponseError as exc:
                replies.append(exc)
                first = first or exc
        return replies, first

    @staticmethod
    def _fail(items: list[tuple[tuple[Any, ...], asyncio.Future[Any]]], exc: BaseException) -> None:
        for _, fut in items:
            if not fut.done():
                fut.set_exception(copy.copy(exc))  # one instance per waiter: tracebacks do not mix


__all__ = ["AutoPipeline", "make_pool", "translate"]
