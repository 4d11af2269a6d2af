"""Redis Cluster plumbing for :class:`~mcastlab.backends.RedisClusterRegistry`: the slot map, one
auto-pipeline per master, and bounded retries through redirects and failovers.

Why not ``redis.asyncio.cluster.RedisCluster``: its pipelines refuse the named multi-key methods, its
per-command Python overhead is several times that of :class:`~mcastlab.backends._redis_pipe.AutoPipeline`,
and it retries on its own schedule. Here every master gets an AutoPipeline (a few dedicated connections,
concurrent commands batched), so commands for the same node from any number of callers share round trips,
and a read over every shard costs one round trip per node.

**Routing.** Every command names its hash slot; ``CLUSTER SLOTS`` (asked of any reachable node: known
masters first, then replicas, then the seed URLs) maps slots to masters. The map is refreshed on a
redirect, on ``CLUSTERDOWN`` / ``TRYAGAIN`` / ``LOADING`` / ``READONLY`` / ``MASTERDOWN``, and when a node
cannot be reached; concurrent refreshes share one request.

**Retries.** A command is retried while the cluster says "not here / not now" (the command did not run)
and, for idempotent commands, after connection loss or timeouts, with a short backoff, until
``max_attempts`` attempts or ``retry_budget`` seconds are spent; then it fails with a typed error
(``BackendUnavailableError`` for unreachable nodes and a cluster that stays down, ``OperationTimeoutError``
for timeouts, ``BackendError`` otherwise). A non-idempotent command (an expiry claim, the admission
counter) is retried after a connection error only when the connection could not even be opened (so it was
never sent). A failover takes ``cluster-node-timeout`` plus about a second: with the default budget (1 s)
calls fail typed during it and succeed again afterwards, through the same client.

``ASK`` (a slot being migrated) is answered by sending ``ASKING`` and the command back to back to the
node named, once. Observers (``on_unreachable``) hear of every node that failed a command, so the
replication watch can re-check the writes that node had not yet replicated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from mcastlab.backends._redis_pipe import AutoPipeline, make_pool, translate
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    McastlabError,
    OperationTimeoutError,
)

Addr = tuple[str, int]
SLOTS = 16384
_NOT_NOW = (TryAgainError, ClusterDownError, MasterDownError, BusyLoadingError, ReadOnlyError)


def parse_nodes(nodes: str | Sequence[str]) -> tuple[str, list[Addr]]:
    """``(scheme, [(host, port), ...])`` from seed URLs ``redis://host:port`` (or ``rediss://``)."""
    urls = [nodes] if isinstance(nodes, str) else list(nodes) if isinstance(nodes, Sequence) else None
    fix = "give node URLs such as ['redis://127.0.0.1:7000', 'redis://127.0.0.1:7001']"
    if not urls or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"nodes must be a Redis Cluster node URL or a list of them, got {nodes!r}; {fix}",
                          key="nodes")
    schemes, addrs = set(), []
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname or port is None:
            raise ConfigError(f"invalid Redis Cluster node URL {url!r}; {fix}", key="nodes")
        if parts.path not in ("", "/", "/0"):
            raise ConfigError(f"node URL {url!r} names a database; a Redis Cluster has only database 0: drop "
                              f"{parts.path!r}", key="nodes")
        schemes.add(parts.scheme)
        addrs.append((parts.hostname, port))
    if len(schemes) > 1:
        raise ConfigError(f"node URLs mix redis:// and rediss://: {urls!r}; use one scheme", key="nodes")
    return schemes.pop(), list(dict.fromkeys(addrs))


def _not_sent(exc: BaseException) -> bool:
    """True if a connection error happened while *opening* the connection, so nothing was sent (redis-py
    words those "Error <n> connecting to <host>:<port>")."""
    return isinstance(exc, BackendUnavailableError) and "connecting to" in str(exc)


class ClusterClient:
    """Slot-routed auto-pipelines over a Redis Cluster; see the module docstring."""

    def __init__(self, nodes: str | Sequence[str], *, backend: str, pool_kw: dict[str, Any], lanes: int,
                 max_batch: int, timeout: float, retry_budget: float, max_attempts: int,
                 scripts: Sequence[str] = ()) -> None:
        self.scheme, self.seeds = parse_nodes(nodes)
        self.backend = backend
        self._pool_kw = {**pool_kw, "db": None}
        self._lanes, self._max_batch, self._timeout = lanes, max_batch, timeout
        self.retry_budget, self.max_attempts = retry_budget, max_attempts
        self._slots: list[Addr | None] = [None] * SLOTS
        self._known: list[Addr] = []  # every node seen in a slot map (masters first)
        self._pipes: dict[Addr, AutoPipeline] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self.scripts = tuple(scripts)  # Lua bodies that EVALSHA may name: loaded where a node lacks them
        self.on_suspect: list[Callable[[Addr], None]] = []
        self.refreshes = 0
        self.retries: Counter[str] = Counter()  # retried failures by kind (sum: the retries)
        self.redirects = 0

    # ------------------------------------------------------------------ topology
    @property
    def masters(self) -> list[Addr]:
        """The masters serving slots, per the current map."""
        return list(dict.fromkeys(a for a in self._slots if a is not None))

    def node_for(self, slot: int) -> Addr:
        """The master serving ``slot`` per the current map (BackendUnavailableError if none)."""
        addr = self._slots[slot]
        if addr is None:
            raise BackendUnavailableError(f"no Redis Cluster node serves slot {slot}", backend=self.backend)
        return addr

    def pipe(self, addr: Addr) -> AutoPipeline:
        """The auto-pipeline to the node at ``addr`` (created on first use)."""
        pipe = self._pipes.get(addr)
        if pipe is None:
            url = f"{self.scheme}://{addr[0]}:{addr[1]}"
            pipe = AutoPipeline(make_pool(url, **self._pool_kw), backend=self.backend, lanes=self._lanes,
                                max_batch=self._max_batch, timeout=self._timeout)
            pipe.start()
            self._pipes[addr] = pipe
        return pipe

    async def open(self) -> None:
        """Read the slot map; BackendUnavailableError if no seed answers."""
        await self.refresh()

    async def close(self) -> None:
        """Stop every pipeline and forget the map."""
        pipes, self._pipes = list(self._pipes.values()), {}
        for pipe in pipes:
            await pipe.close()
            with contextlib.suppress(Exception):
                await pipe._pool.disconnect()
        self._slots = [None] * SLOTS

    async def refresh(self) -> None:
        """Re-read the slot map (concurrent callers share one request)."""
        task = self._refreshing
        if task is None:
            task = self._refreshing = asyncio.ensure_future(self._refresh())
            task.add_done_callback(self._refreshed)
        await asyncio.shield(task)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter gets it from its own await

    async def _refresh(self) -> None:
        last: BaseException | None = None
        for addr in dict.fromkeys([*self.masters, *self._known, *self.seeds]):
            url = f"{self.scheme}://{addr[0]}:{addr[1]}"
            pool = make_pool(url, **{**self._pool_kw, "max_connections": 1})
            client = aioredis.Redis(connection_pool=pool)
            try:  # a hung node must not hold up the others: a short bound per node
                async with asyncio.timeout(min(self._timeout, 1.0)):
                    reply = await client.execute_command("CLUSTER", "SLOTS")
            except Exception as exc:
                last = exc
                continue
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
                    await pool.disconnect()
            self._apply(reply)
            self.refreshes += 1
            return
        err = translate(last, self.backend, "reading the Redis Cluster slot map") if last else None
        raise BackendUnavailableError(f"no Redis Cluster node answers ({err})", backend=self.backend)

    def _apply(self, reply: Any) -> None:
        slots: list[Addr | None] = [None] * SLOTS
        masters, replicas = [], []
        for entry in reply:
            lo, hi, master = int(entry[0]), int(entry[1]), entry[2]
            addr = (_s(master[0]), int(master[1]))
            slots[lo:hi + 1] = [addr] * (hi - lo + 1)
            masters.append(addr)
            replicas += [(_s(r[0]), int(r[1])) for r in entry[3:]]
        self._slots = slots
        self._known = list(dict.fromkeys([*masters, *replicas, *self._known]))

    def _suspect(self, addr: Addr) -> None:
        for observer in self.on_suspect:
            observer(addr)

    async def _load_scripts(self, addr: Addr) -> None:
        pipe = self.pipe(addr)
        for body in self.scripts:
            await pipe.call("SCRIPT", "LOAD", body)

    # ------------------------------------------------------------------ commands
    async def call(self, slot: int, *args: Any, idempotent: bool = True) -> Any:
        """Run one command on ``slot``'s master, with the retries of the module docstring."""
        return await self._retry(slot, ("call", args), idempotent, None)

    async def call_many(self, slot: int, *commands: tuple[Any, ...], idempotent: bool = True) -> Any:
        """Commands sent back to back on one connection to ``slot``'s master; their replies."""
        return await self._retry(slot, ("many", commands), idempotent, None)

    async def many(self, items: Sequence[tuple[int, str, tuple[Any, ...]]], *, idempotent: bool = True,
                   return_exceptions: bool = False) -> list[Any]:
        """Run ``(slot, how, args)`` items (``how``: ``call`` or ``many``) concurrently: the first attempts
        are all queued before any is awaited, so each node gets one pipeline (one round trip). Each item's
        reply, or (``return_exceptions``) its typed error."""
        firsts: list[tuple[Addr | None, Any]] = []
        for slot, how, args in items:
            try:
                addr = self.node_for(slot)
                sent = self._send(addr, how, args)
                sent.add_done_callback(_consume)  # if this call is cancelled before awaiting it
                firsts.append((addr, sent))
            except McastlabError as exc:
                firsts.append((None, exc))
        runs = (self._retry(slot, (how, args), idempotent, first)
                for (slot, how, args), first in zip(items, firsts, strict=True))
        return list(await asyncio.gather(*runs, return_exceptions=return_exceptions))

    def _send(self, addr: Addr, how: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        pipe = self.pipe(addr)
        return pipe.call(*args) if how == "call" else pipe.call_many(*args)

    async def _retry(self, slot: int, cmd: tuple[str, tuple[Any, ...]], idempotent: bool,
                     first: tuple[Addr | None, Any] | None) -> Any:
        how, args = cmd
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget
        attempt = 0
        reloaded = False
        last: BaseException
        while True:
            attempt += 1
            addr: Addr | None = None
            try:
                if first is not None:
                    addr, pending = first
                    first = None
                    if isinstance(pending, BaseException):
                        raise pending
                    return await pending
                addr = self.node_for(slot)
                return await self._send(addr, how, args)
            except MovedError as exc:
                self.redirects += 1
                if addr is not None:
                    self._suspect(addr)  # a failover or a resharding moved the slot away from it
                self._slots[exc.slot_id] = (exc.host, exc.port)
                retry, refresh, last = True, True, exc
            except AskError as exc:
                self.redirects += 1
                target = (exc.host, exc.port)  # the slot is migrating there: ask once, do not remap
                cmds = args if how == "many" else (args,)
                replies = await self.pipe(target).call_many(*(c for cmd in cmds for c in (("ASKING",), cmd)))
                return replies[1::2] if how == "many" else replies[1]
            except NoScriptError as exc:  # a new master (failover) or a flushed script cache
                if addr is not None:
                    await self._load_scripts(addr)
                if not reloaded:  # the first reload is free: it is not the cluster failing
                    reloaded = True
                    attempt -= 1
                    continue
                retry, refresh, last = True, False, exc
            except _NOT_NOW as exc:
                retry, refresh, last = True, True, exc
            except (BackendUnavailableError, OperationTimeoutError) as exc:
                if addr is not None:
                    self._suspect(addr)
                retry, refresh, last = idempotent or _not_sent(exc), True, exc
            except McastlabError:
                raise
            except ResponseError as exc:
                raise BackendError(f"Redis error: {exc}", backend=self.backend) from None
            except Exception as exc:
                raise translate(exc, self.backend) from None
            if not retry or attempt >= self.max_attempts or loop.time() >= deadline:
                raise self._give_up(last, attempt, slot)
            self.retries[type(last).__name__] += 1
            await asyncio.sleep(min(0.01 * 2 ** attempt, 0.2, max(0.0, deadline - loop.time())))
            if refresh:
                with contextlib.suppress(McastlabError):
                    await self.refresh()

    def _give_up(self, exc: BaseException, attempts: int, slot: int) -> McastlabError:
        what = f"slot {slot}: gave up after {attempts} attempt(s)"
        if isinstance(exc, OperationTimeoutError):
            return OperationTimeoutError(f"{what}: {exc}", backend=self.backend)
        if isinstance(exc, (BackendUnavailableError, MovedError, *_NOT_NOW)):
            return BackendUnavailableError(f"{what}: Redis Cluster unavailable ({exc})", backend=self.backend)
        return BackendError(f"{what}: {exc}", backend=self.backend)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["SLOTS", "Addr", "ClusterClient", "parse_nodes"]
