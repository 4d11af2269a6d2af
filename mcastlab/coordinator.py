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

State has one owner each: the registered count is a :class:`~mcastlab.population.Population`, the
expiry counts belong to the :class:`~mcastlab.sweeper.Sweeper`, a fan-out reports its own outcome
(:class:`~mcastlab.fanout.FanOutOutcome`). The design as a whole is in ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any, cast

from mcastlab._guard import Guard
from mcastlab._identity_side import IdentitySide
from mcastlab.backends.base import (
    MODES,
    Durability,
    DurableRecord,
    ExpiredIdentity,
    Messaging,
    Registry,
    StoredCount,
)
from mcastlab.config import Config
from mcastlab.errors import (
    BackendError,
    ClosedError,
    ConfigError,
    RegistryFullError,
    UnknownIdentityError,
    UnsupportedError,
    UsageError,
)
from mcastlab.fanout import FanOut
from mcastlab.filters import CompiledFilter, compile_filter
from mcastlab.identity import Identity, validate_identity, validate_metadata, validate_payload, validate_ttl
from mcastlab.metrics import Metrics
from mcastlab.population import Population
from mcastlab.results import ExpirationEvent, MulticastResult, OpEvent
from mcastlab.runtime.base import Runtime
from mcastlab.sweeper import Sweeper

Listener = Callable[[OpEvent | ExpirationEvent], None]
log = logging.getLogger("mcastlab.coordinator")


class Coordinator(IdentitySide):
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
        self.population = Population()
        stored = cast(StoredCount, registry) if registry.capabilities.stored_count else None
        self._sweeper = Sweeper(runtime, config, claim=self._claim, next_deadline=registry.next_deadline,
                                on_claimed=self._claimed, population=self.population,
                                stored_count=None if stored is None else stored.identities)
        self.metrics.registered.set_function(lambda: self.population.value)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> Coordinator:
        """Open the backends and start the expiry sweeper. Idempotent; a failed open leaves nothing open."""
        if self._state == "open":
            return self
        if self._state == "closed":
            raise ClosedError("this coordinator is closed; create a new one")
        opened: list[Any] = []
        try:
            for backend in (self.registry, self.messaging, self.durability):
                if backend is not None:
                    await backend.open(self.runtime)
                    opened.append(backend)
        except BaseException:
            for backend in reversed(opened):
                try:
                    await backend.close()
                except Exception:  # the open's own error is the one worth reporting
                    log.warning("closing %s after a failed open failed too", backend.name, exc_info=True)
                    self.metrics.operation_error("open", "CloseAfterFailedOpen")
            raise
        # unique across restarts of a coordinator with the same name (durable ids must not repeat),
        # yet deterministic in virtual time, where the clock starts at the same instant every run
        self._id_prefix = f"{self.name}-{int(self.runtime.now() * 1e6):x}-"
        self._state = "open"
        if self.config.auto_sweep:
            self._sweeper.start(lambda: self._state == "open")
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

    # ------------------------------------------------------------------ counts (read-only views)
    @property
    def registered(self) -> int:
        """Registered identities as this coordinator sees them (the gauge's value)."""
        return self.population.value

    @property
    def expired_total(self) -> int:
        """Expirations this coordinator claimed."""
        return self._sweeper.expired_total

    @property
    def sweep_errors(self) -> int:
        """Background sweeps that failed (each logged on ``mcastlab.sweeper``)."""
        return self._sweeper.errors

    # ------------------------------------------------------------------ listeners and failures
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every OpEvent and ExpirationEvent (must not block)."""
        if not callable(listener):
            raise UsageError(f"listener must be a callable taking one event, got {listener!r:.60}")
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _emit(self, event: OpEvent | ExpirationEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not fail the operation it observes
                log.warning("listener %r failed on %s", listener, type(event).__name__, exc_info=True)
                self.metrics.operation_error("listener", "ListenerError")

    @property
    def backend_name(self) -> str:
        return self.registry.name

    def _count_error(self, op: str, kind: str) -> None:
        self.metrics.operation_error(op, kind)

    def _failed(self, op: str, t0: float, exc: BaseException, identity: str = "") -> None:
        self.metrics.operation_error(op, type(exc).__name__)
        if self._listeners:
            self._emit(OpEvent(op, t0, self.runtime.now() - t0, False, type(exc).__name__, identity=identity))

    def _ttl(self, ttl: object) -> float | None:
        return self.config.default_ttl if ttl is None else validate_ttl(ttl)

    # ------------------------------------------------------------------ registry operations
    async def register(self, identity: str, metadata: Any = None, ttl: float | None = None) -> Identity:
        """Insert or replace ``identity`` with ``metadata``; its TTL (re)starts now."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with Guard(self, "register", t0, identity):
            name = validate_identity(identity)
            md, _ = validate_metadata(metadata, max_bytes=self.config.max_metadata_bytes)
            ttl_s = self._ttl(ttl)
            rec = Identity(name, MappingProxyType(md), t0, None if ttl_s is None else t0 + ttl_s)
            limit = self.config.max_identities
            try:
                is_new = await self.registry.upsert(rec, now=t0, max_identities=limit)
            except RegistryFullError:  # the expired may hold the places: sweep, then try once more (even
                await self.sweep()        # if another sweeper claimed them first, the places are free now)
                is_new = await self.registry.upsert(rec, now=t0, max_identities=limit)
        if is_new:
            self.population.added()
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
        with Guard(self, "heartbeat", t0, identity):
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
        with Guard(self, "unregister", t0, identity):
            name = validate_identity(identity)
            removed = await self.registry.remove(name)
        if removed:
            self.population.removed()
        if self._listeners:
            self._emit(OpEvent("unregister", t0, self.runtime.now() - t0, True, identity=name))
        return removed

    async def get(self, identity: str) -> Identity | None:
        """The live identity named ``identity``, or None."""
        await self._ready()
        t0 = self.runtime.now()
        with Guard(self, "get", t0, identity):
            return await self.registry.get(validate_identity(identity), now=t0)

    def compile(self, flt: Any) -> CompiledFilter:
        """Parse and check a filter against this coordinator's limits (done once; reuse the result)."""
        if isinstance(flt, CompiledFilter):
            return flt
        cfg = self.config
        return compile_filter(flt, max_depth=cfg.max_filter_depth, max_clauses=cfg.max_clauses)

    async def enumerate(self, filter: Any = None) -> Sequence[Identity]:  # noqa: A002 - spec's name
        """Live identities matching ``filter`` (None, dict, string or Filter), in the backend's order:
        a list (a lazy read-only sequence for a million-member simulated fleet)."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with Guard(self, "enumerate", t0):
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
        with Guard(self, "count", t0):
            n = await self.registry.count(self.compile(filter), now=t0)
        if self._listeners:
            self._emit(OpEvent("count", t0, self.runtime.now() - t0, True, matched=n))
        return n

    # ------------------------------------------------------------------ multicast
    async def multicast(self, filter: Any, payload: bytes | str, *,  # noqa: A002
                        mode: str | None = None) -> MulticastResult:
        """Send ``payload`` to every live identity matching ``filter``; never loses the fan-out."""
        if self._state != "open":
            await self._ready()
        t0 = self.runtime.now()
        with Guard(self, "multicast", t0):
            mode = self.config.delivery_mode if mode is None else mode
            if mode not in MODES:
                raise UsageError(f"mode must be one of {MODES}, got {mode!r}")
            if mode not in self.messaging.modes:
                raise UnsupportedError(f"the {self.messaging.name} messaging backend does not support "
                                       f"mode={mode!r}; it supports {tuple(self.messaging.modes)}")
            data = validate_payload(payload, max_bytes=self.config.max_payload_bytes)
            cf = self.compile(filter)
            targets = await self.registry.query_ids(cf, now=t0)
            t_enum = self.runtime.now()
            self._seq += 1
            message_id = f"{self._id_prefix}{self._seq}"
            if self.durability is not None:
                await self.durability.record(DurableRecord(message_id, cf.text, data, t0, tuple(targets)))
        with Guard(self, "multicast", t0):  # sends never raise; this only catches a broken backend
            out = await self._fanout.run(targets, message_id, data, mode, t0)
        statuses, delivered, failed = out.statuses, out.delivered, out.failed
        for _ in range(out.journal_errors):
            self.metrics.operation_error("multicast", "DurabilityOutcome")
        if self.durability is not None:
            try:
                await self.durability.outcome(message_id, statuses, now=self.runtime.now())
            except Exception:  # the fan-out happened; replay will re-offer what is not marked delivered
                log.warning("recording the outcome of %s failed", message_id, exc_info=True)
                self.metrics.operation_error("multicast", "DurabilityOutcome")
        t_end = self.runtime.now()
        self.metrics.delivered.observe(delivered)
        for status, n in out.failures_by_status().items():
            self.metrics.failure(status, n)
        if self._listeners:
            self._emit(OpEvent("multicast", t0, t_end - t0, True, matched=len(targets), delivered=delivered,
                               failed=failed, message_id=message_id))
        return MulticastResult(message_id, mode, len(targets), delivered, failed, statuses, out.latencies,
                               t0, t_end - t0, t_enum - t0)

    # ------------------------------------------------------------------ expiry
    async def sweep(self) -> int:
        """Claim every identity whose deadline has passed; emit one ExpirationEvent each.

        Each claimed batch is counted before the next is asked for, so a backend failure midway loses
        no expiration already claimed (the failure is raised as a BackendError).
        """
        return await self._sweeper.sweep()

    async def _claim(self, now: float, limit: int) -> list[ExpiredIdentity]:
        with Guard(self, "sweep", now, emit=False):  # background work: counted, not an operation event
            return await self.registry.claim_expired(now=now, limit=limit)

    def _claimed(self, claimed: Sequence[ExpiredIdentity], t: float) -> None:
        self.metrics.expirations.inc(len(claimed))
        if self._listeners:
            for c in claimed:
                self._emit(ExpirationEvent(c.id, c.deadline, t, self.name))


__all__ = ["Coordinator"]
