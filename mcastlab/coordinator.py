"""The Coordinator: register / heartbeat / unregister / enumerate / count / multicast / close.

Theory of operation
-------------------
The coordinator is plain ``async def`` code that never imports asyncio or simpy: it reads the time
with ``runtime.now()`` and waits, spawns and gathers through its :class:`~mcastlab.runtime.Runtime`,
so the same code runs on a live event loop and in SimPy virtual time.

* **Register** validates the name, metadata and TTL first (a refused call changes nothing), then
  upserts one :class:`Identity` with deadline ``now + ttl`` into the registry. Re-registering replaces
  metadata and restarts the TTL. If the registry is full, expired-but-unswept identities are swept
  (and counted) and the upsert is tried once more.
* **Expiry** is exact without the sweeper: registries never return an identity at or past its deadline.
  The sweeper (a background task started by ``open``) sleeps until the registry's next deadline
  (bounded by ``sweep_resolution`` and ``sweep_interval``, and woken early by a register with an earlier
  deadline), claims expired identities — each exactly once, even with several coordinators on one
  registry — and emits one :class:`ExpirationEvent` per identity with its detection lag.
* **Multicast** enumerates, then fans out through a bounded window of ``max_in_flight`` concurrent
  sends. Each send is retried with exponential backoff (not when nobody listens in ``ack`` mode) and
  bounded by ``send_timeout``; its failure becomes that identity's status, never an exception that loses
  the rest. In ``publish`` mode sends may be buffered by the backend and are confirmed by one flush per
  fan-out.
* **Listeners** (``add_listener``) receive an :class:`OpEvent` per operation and an
  :class:`ExpirationEvent` per expiry; the measurement recorder is one.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, Literal

from mcastlab.backends.base import (
    DELIVERED,
    MODES,
    Durability,
    DurableRecord,
    Message,
    Messaging,
    Registry,
)
from mcastlab.config import Config
from mcastlab.errors import (
    BackendError,
    ClosedError,
    ConfigError,
    McastlabError,
    PayloadTooLargeError,
    RegistryFullError,
    UnknownIdentityError,
    UnsupportedError,
    UsageError,
)
from mcastlab.fanout import FanOut
from mcastlab.filters import CompiledFilter, compile_filter
from mcastlab.identity import Identity, validate_identity, validate_metadata, validate_ttl
from mcastlab.metrics import Metrics
from mcastlab.results import ExpirationEvent, MulticastResult, OpEvent
from mcastlab.runtime.base import Runtime
from mcastlab.sweeper import Sweeper

Listener = Callable[[OpEvent | ExpirationEvent], None]


class _Guard:
    """Wraps one operation: counts and reports its failure; foreign exceptions become BackendError."""

    __slots__ = ("c", "emit", "identity", "op", "t0")

    def __init__(self, c: Coordinator, op: str, t0: float, identity: object = "", *,
                 emit: bool = True) -> None:
        self.c, self.op, self.t0, self.identity, self.emit = c, op, t0, identity, emit

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False
        if self.emit:
            self.c._failed(self.op, self.t0, exc, str(self.identity))
        else:
            self.c.metrics.operation_error(self.op, type(exc).__name__)
        if isinstance(exc, McastlabError):
            return False
        what = f"{self.op}({self.identity!r})" if self.identity != "" else self.op
        raise BackendError(f"{what} failed: {type(exc).__name__}: {exc}",
                           backend=self.c.registry.name) from exc


class Coordinator:
    """The multicast registry. Use as ``async with Coordinator(...) as c:``; see the module docstring."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        registry: Registry | None = None,
        messaging: Messaging | None = None,
        durability: Durability | None = None,
        runtime: Runtime | None = None,
        metrics: Metrics | Any | None = None,
        name: str | None = None,
    ) -> None:
        if config is None:
            config = Config()
        if not isinstance(config, Config):
            raise ConfigError(f"config must be a mcastlab.Config, got {type(config).__name__}; "
                              "use Config.from_dict(...) for a dict")
        self.config = config
        if runtime is None:
            from mcastlab.runtime._asyncio import AsyncioRuntime

            runtime = AsyncioRuntime()
        if registry is None or messaging is None:
            from mcastlab.backends.memory import MemoryMessaging, MemoryRegistry

            registry = registry if registry is not None else MemoryRegistry()
            messaging = messaging if messaging is not None else MemoryMessaging()
        for slot, obj, proto in (("registry", registry, Registry), ("messaging", messaging, Messaging),
                                 ("runtime", runtime, Runtime)):
            if not isinstance(obj, proto):
                raise ConfigError(f"{slot}={obj!r} does not implement the {proto.__name__} protocol "
                                  f"(see mcastlab.backends.base / mcastlab.runtime)")
        if durability is not None and not isinstance(durability, Durability):
            raise ConfigError(f"durability={durability!r} does not implement the Durability protocol")
        self.runtime = runtime
        self.registry = registry
        self.messaging = messaging
        self.durability = durability
        self.metrics = metrics if isinstance(metrics, Metrics) else Metrics(metrics)
        if name is not None and (not isinstance(name, str) or not name or not name.isprintable()):
            raise ConfigError(f"name must be a non-empty printable str such as 'gateway-1', got {name!r}")
        self.name = name or f"coord-{secrets.token_hex(3)}"
        self._fanout = FanOut(config, runtime, messaging, durability)
        self._listeners: list[Listener] = []
        self._state = "new"
        self._seq = 0
        self._id_prefix = f"{self.name}-"
        self._sweeper = Sweeper(self)
        self.expired_total = 0
        self.sweep_errors = 0
        # the registered gauge: this coordinator's own count, replaced by the registry's count after each
        # sweep (at most every sweep_interval) when the registry can tell (identities())
        self.registered = 0
        self.metrics.registered.set_function(lambda: self.registered)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> Coordinator:
        """Open the backends and start the expiry sweeper. Idempotent; a failed open leaves nothing open."""
        if self._state == "open":
            return self
        if self._state == "closed":
            raise ClosedError("this coordinator is closed; create a new one")
        opened: list[Any] = []
        try:
            await self.registry.open()
            opened.append(self.registry)
            await self.messaging.open(self.runtime)
            opened.append(self.messaging)
            if self.durability is not None:
                await self.durability.open()
                opened.append(self.durability)
        except BaseException:
            for backend in reversed(opened):
                try:
                    await backend.close()
                except Exception:  # the open's own error is the one worth reporting
                    self.metrics.operation_error("open", "CloseAfterFailedOpen")
            raise
        # unique across restarts of a coordinator with the same name (durable ids must not repeat),
        # yet deterministic in virtual time, where the clock starts at the same instant every run
        self._id_prefix = f"{self.name}-{int(self.runtime.now() * 1e6):x}-"
        self._state = "open"
        if self.config.auto_sweep:
            self._sweeper.start()
        return self

    async def close(self) -> None:
        """Stop the sweeper and close every backend (each even if another fails). Idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        self._sweeper.stop()
        errors: list[Exception] = []
        for backend in (self.messaging, self.registry, self.durability):
            if backend is None:
                continue
            try:
                await backend.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise BackendError(f"closing the backends failed: {errors[0]!r}", backend=self.registry.name) \
                from errors[0]

    async def __aenter__(self) -> Coordinator:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    async def _ready(self) -> None:
        if self._state != "open":
            await self.open()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every OpEvent and ExpirationEvent (must not block)."""
        if not callable(listener):
            raise UsageError(f"listener must be a callable taking one event, got {listener!r:.60}")
        self._listeners.append(listener)

    def note_registered(self, n: int) -> None:
        """Account for ``n`` identities added (or removed, if negative) behind the coordinator's back,
        e.g. by a simulated fleet's bulk upserts, so the registered gauge stays right."""
        self.registered += n

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _emit(self, event: OpEvent | ExpirationEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not fail the operation it observes
                self.metrics.operation_error("listener", "ListenerError")

    def _failed(self, op: str, t0: float, exc: BaseException, identity: str = "") -> None:
        self.metrics.operation_error(op, type(exc).__name__)
        if self._listeners:
            self._emit(OpEvent(op, t0, self.runtime.now() - t0, False, type(exc).__name__, identity=identity))

    def _ttl(self, ttl: object) -> float | None:
        if ttl is None:
            return self.config.default_ttl
        return validate_ttl(ttl)

    # ------------------------------------------------------------------ registry operations
    async def register(self, identity: str, metadata: Any = None, ttl: float | None = None) -> Identity:
        """Insert or replace ``identity`` with ``metadata``; its TTL (re)starts now."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "register", t0, identity):
            name = validate_identity(identity)
            md, _ = validate_metadata(metadata, max_bytes=self.config.max_metadata_bytes)
            ttl_s = self._ttl(ttl)
            rec = Identity(name, MappingProxyType(md), t0, None if ttl_s is None else t0 + ttl_s)
            limit = self.config.max_identities
            try:
                is_new = await self.registry.upsert(rec, now=t0, max_identities=limit)
            except RegistryFullError:
                if await self.sweep() == 0:
                    raise
                is_new = await self.registry.upsert(rec, now=t0, max_identities=limit)
        if is_new:
            self.registered += 1
        if rec.expires_at is not None:
            self._sweeper.deadline_added(rec.expires_at)
        if self._listeners:
            self._emit(OpEvent("register", t0, self.runtime.now() - t0, True, identity=name))
        return rec

    async def heartbeat(self, identity: str, ttl: float | None = None) -> Identity:
        """Restart a live identity's TTL without resending metadata."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "heartbeat", t0, identity):
            name = validate_identity(identity)
            ttl_s = self._ttl(ttl)
            rec = await self.registry.touch(name, None if ttl_s is None else t0 + ttl_s, now=t0)
            if rec is None:
                raise UnknownIdentityError(
                    f"cannot heartbeat {name!r}: it is not registered or has expired; call register() again",
                    identity=name)
        if self._listeners:
            self._emit(OpEvent("heartbeat", t0, self.runtime.now() - t0, True, identity=name))
        return rec

    async def unregister(self, identity: str) -> bool:
        """Remove ``identity``; returns whether it was there. Idempotent."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "unregister", t0, identity):
            name = validate_identity(identity)
            removed = await self.registry.remove(name)
        if removed:
            self.registered -= 1
        if self._listeners:
            self._emit(OpEvent("unregister", t0, self.runtime.now() - t0, True, identity=name))
        return removed

    async def get(self, identity: str) -> Identity | None:
        """The live identity named ``identity``, or None."""
        await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "get", t0, identity):
            return await self.registry.get(validate_identity(identity), now=t0)

    def compile(self, flt: Any) -> CompiledFilter:
        """Parse and check a filter against this coordinator's limits (done once; reuse the result)."""
        if isinstance(flt, CompiledFilter):
            return flt
        cfg = self.config
        return compile_filter(flt, max_depth=cfg.max_filter_depth, max_clauses=cfg.max_clauses)

    async def enumerate(self, filter: Any = None) -> list[Identity]:  # noqa: A002 - spec's name
        """Live identities matching ``filter`` (None, dict, string or Filter), in the backend's order."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "enumerate", t0):
            cf = self.compile(filter)
            found = await self.registry.query(cf, now=t0)
        dt = self.runtime.now() - t0
        self.metrics.enumerate_latency.observe(dt)
        if self._listeners:
            self._emit(OpEvent("enumerate", t0, dt, True, matched=len(found)))
        return found

    async def count(self, filter: Any = None) -> int:  # noqa: A002
        """How many live identities match ``filter``."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "count", t0):
            n = await self.registry.count(self.compile(filter), now=t0)
        if self._listeners:
            self._emit(OpEvent("count", t0, self.runtime.now() - t0, True, matched=n))
        return n

    # ------------------------------------------------------------------ multicast
    def _payload(self, payload: Any) -> bytes:
        if isinstance(payload, str):
            data = payload.encode()
        elif isinstance(payload, bytes | bytearray | memoryview):
            data = bytes(payload)
        else:
            raise UsageError(f"payload must be bytes or str, got {type(payload).__name__}; "
                             "encode it first, e.g. json.dumps(obj).encode()")
        if len(data) > self.config.max_payload_bytes:
            raise PayloadTooLargeError(
                f"payload is {len(data)} bytes; the limit is {self.config.max_payload_bytes} "
                "(Config.max_payload_bytes). Send a reference to the data instead, or raise the limit",
                size=len(data), limit=self.config.max_payload_bytes)
        return data

    async def multicast(self, filter: Any, payload: bytes | str, *,  # noqa: A002
                        mode: str | None = None) -> MulticastResult:
        """Send ``payload`` to every live identity matching ``filter``; never loses the fan-out."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with _Guard(self, "multicast", t0):
            mode = self.config.delivery_mode if mode is None else mode
            if mode not in MODES:
                raise UsageError(f"mode must be one of {MODES}, got {mode!r}")
            if mode not in self.messaging.modes:
                raise UnsupportedError(f"the {self.messaging.name} messaging backend does not support "
                                       f"mode={mode!r}; it supports {tuple(self.messaging.modes)}")
            data = self._payload(payload)
            cf = self.compile(filter)
            targets = await self.registry.query(cf, now=t0)
            t_enum = self.runtime.now()
            self._seq += 1
            message_id = f"{self._id_prefix}{self._seq}"
            if self.durability is not None:
                await self.durability.record(DurableRecord(message_id, cf.text, data, t0,
                                                           [t.id for t in targets]))
        journal_errors = self._fanout.journal_errors
        with _Guard(self, "multicast", t0):  # sends never raise; this only catches a broken backend
            statuses, latencies = await self._fanout.run(targets, message_id, data, mode, t0)
        for _ in range(self._fanout.journal_errors - journal_errors):
            self.metrics.operation_error("multicast", "DurabilityOutcome")
        delivered = sum(1 for s in statuses.values() if s == DELIVERED)
        failed = len(statuses) - delivered
        if self.durability is not None:
            try:
                await self.durability.outcome(message_id, statuses, now=self.runtime.now())
            except Exception:  # the fan-out happened; replay will re-offer what is not marked delivered
                self.metrics.operation_error("multicast", "DurabilityOutcome")
        t_end = self.runtime.now()
        self.metrics.delivered.observe(delivered)
        if failed:
            for status in {s for s in statuses.values() if s != DELIVERED}:
                self.metrics.failure(status, sum(1 for s in statuses.values() if s == status))
        if self._listeners:
            self._emit(OpEvent("multicast", t0, t_end - t0, True, matched=len(targets), delivered=delivered,
                               failed=failed, message_id=message_id))
        return MulticastResult(message_id, mode, len(targets), delivered, failed, statuses, latencies,
                               t0, t_end - t0, t_enum - t0)

    @asynccontextmanager
    async def inbox(self, identity: str) -> AsyncIterator[Any]:
        """The identity's side: ``async with c.inbox("dev-1") as box: msg = await box.get(timeout=1)``."""
        name = validate_identity(identity)
        await self._ready()
        with _Guard(self, "inbox", self.runtime.now(), identity):
            cm = self.messaging.inbox(name)
            box = await cm.__aenter__()
        try:
            yield box
        except BaseException as exc:
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await cm.__aexit__(None, None, None)

    async def replay(self, identity: str, *, since: float = 0.0) -> list[Message]:
        """Messages ``identity`` missed since ``since`` (needs a durability backend)."""
        name = validate_identity(identity)
        if self.durability is None:
            raise UnsupportedError("replay needs a durability backend: "
                                   "Coordinator(durability=SqliteDurability(...)) or PostgresDurability(...)")
        if isinstance(since, bool) or not isinstance(since, int | float) or since != since:
            raise UsageError(f"since must be a time in seconds on the coordinator's clock (e.g. 0 for "
                             f"everything), got {since!r}")
        await self._ready()
        with _Guard(self, "replay", self.runtime.now(), identity):
            return await self.durability.pending(name, since=float(since))

    async def ack(self, identity: str, message_ids: Any) -> None:
        """Record that ``identity`` now holds these replayed messages, so they are not offered again."""
        name = validate_identity(identity)
        if self.durability is None:
            raise UnsupportedError("ack needs a durability backend: "
                                   "Coordinator(durability=SqliteDurability(...)) or PostgresDurability(...)")
        ids = [message_ids] if isinstance(message_ids, str) else message_ids
        listed = isinstance(ids, list | tuple | set | frozenset)
        if not listed or not all(isinstance(m, str) and m for m in ids):
            raise UsageError(f"message_ids must be a message id (Message.id) or a list of them, "
                             f"got {message_ids!r:.80}")
        await self._ready()
        with _Guard(self, "ack", self.runtime.now(), identity):
            for mid in ids:
                await self.durability.outcome(mid, {name: DELIVERED}, now=self.runtime.now())

    # ------------------------------------------------------------------ expiry
    async def sweep(self) -> int:
        """Claim every identity whose deadline has passed; emit one ExpirationEvent each.

        Each claimed batch is counted before the next is asked for, so a backend failure midway loses
        no expiration already claimed (the failure is raised as a BackendError).
        """
        total = 0
        batch = self.config.sweep_batch
        t0 = self.runtime.now()
        with _Guard(self, "sweep", t0, emit=False):  # background work: counted, not an operation event
            while True:
                claimed = await self.registry.claim_expired(now=self.runtime.now(), limit=batch)
                if claimed:
                    n = len(claimed)
                    total += n
                    self.expired_total += n
                    self.registered -= n
                    self.metrics.expirations.inc(n)
                    if self._listeners:
                        t = self.runtime.now()
                        for c in claimed:
                            self._emit(ExpirationEvent(c.id, c.deadline, t, self.name))
                if len(claimed) < batch:
                    break
        return total


__all__ = ["Coordinator"]
