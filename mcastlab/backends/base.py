"""Backend protocols: the three slots of the pattern (registry, messaging, durability).

Backends never read a clock: every method that needs the time takes ``now`` from the caller
(the coordinator, which reads it from its runtime). Every backend receives the coordinator's runtime
the same way, at ``open(runtime)``. Live backends (Redis, NATS, PostgreSQL) are asyncio-only; the
embedded memory backends work under any runtime; simulated ones need a SimPyRuntime.

What a backend can do beyond its protocol is *declared*, never probed: each has a frozen
:class:`Capabilities` record, and the optional methods those flags promise are typed by the small
sub-protocols :class:`BatchPublisher` and :class:`StoredCount`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from mcastlab.identity import Identity

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter
    from mcastlab.runtime.base import Runtime

# Delivery statuses, per identity, in MulticastResult.statuses.
DELIVERED = "delivered"  # publish: accepted by the messaging server; ack: the inbox acknowledged
TIMEOUT = "timeout"  # the send (or its ack) did not complete within Config.send_timeout
NO_LISTENER = "no_listener"  # ack mode and nobody is listening on the identity's inbox
UNAVAILABLE = "unavailable"  # messaging server unreachable (down, disconnected, outage)
ERROR = "error"  # any other failure
STATUSES = (DELIVERED, TIMEOUT, NO_LISTENER, UNAVAILABLE, ERROR)

MODES = ("publish", "ack")


class Message(NamedTuple):
    """One message as an inbox receives it (immutable; a NamedTuple because fan-out builds many)."""

    id: str
    payload: bytes
    identity: str
    sent_at: float
    attempt: int = 1
    redelivery: bool = False
    received_at: float | None = None  # stamped by the receiving side

    @property
    def latency(self) -> float | None:
        """Seconds from send to receipt, once received."""
        return None if self.received_at is None else self.received_at - self.sent_at


@dataclass(frozen=True, slots=True)
class ExpiredIdentity:
    """An identity claimed by a sweep: removed from the registry, to be counted exactly once."""

    id: str
    deadline: float


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend does beyond its slot's protocol; the coordinator reads these flags, never probes.

    * ``self_timed`` (messaging): ``send`` and ``flush`` honour their ``timeout`` argument themselves,
      so the fan-out need not wrap each call in ``runtime.wait_for``.
    * ``inline_modes`` (messaging): modes whose sends never suspend (they append to a buffer), so the
      fan-out drives them with one worker instead of a window of concurrent ones.
    * ``publish_batch`` (messaging): implements :class:`BatchPublisher` — a publish fan-out's first
      attempt goes to the backend in one call.
    * ``stored_count`` (registry): implements :class:`StoredCount` — the registry can tell how many
      identities it stores, so the registered gauge can follow a registry shared by many coordinators.
    """

    self_timed: bool = False
    inline_modes: tuple[str, ...] = ()
    publish_batch: bool = False
    stored_count: bool = False


NO_CAPABILITIES = Capabilities()


@runtime_checkable
class Registry(Protocol):
    """Stores identities with metadata and deadlines; answers filtered queries.

    Contract (checked by the backend contract suite):
    - ``upsert`` replaces metadata and deadline; raises RegistryFullError (changing nothing) if the
      identity is new and ``max_identities`` live identities are already stored.
    - identities with ``expires_at <= now`` are never returned by ``get``/``query``/``count``.
    - ``claim_expired`` removes and returns each expired identity exactly once, also when several
      coordinators share the backend.
    """

    name: str
    capabilities: Capabilities

    async def open(self, runtime: Runtime) -> None: ...

    async def close(self) -> None: ...

    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        """Insert or replace; return True if the identity was new (or had expired)."""
        ...

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        """Move a live identity's deadline; return the updated identity, or None if absent/expired."""
        ...

    async def remove(self, identity_id: str) -> bool:
        """Delete; return True if something was removed. Idempotent."""
        ...

    async def get(self, identity_id: str, *, now: float) -> Identity | None: ...

    async def query(self, flt: CompiledFilter, *, now: float) -> Sequence[Identity]:
        """The live matches (a list, or a lazy read-only sequence for very large simulated fleets)."""
        ...

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        """The ids of the live identities matching ``flt`` (what a multicast needs: no metadata)."""
        ...

    async def count(self, flt: CompiledFilter, *, now: float) -> int: ...

    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        """Remove up to ``limit`` identities with deadline <= now and return them (once each)."""
        ...

    async def next_deadline(self) -> float | None:
        """The earliest stored deadline, or None; lets the sweeper sleep exactly (vital in sim)."""
        ...


class Inbox(Protocol):
    """The identity's side: messages addressed to it, acknowledged on receipt."""

    identity: str

    async def get(self, timeout: float | None = None) -> Message: ...

    def get_nowait(self) -> Message | None: ...

    def __len__(self) -> int: ...


@runtime_checkable
class Messaging(Protocol):
    """Delivers messages to identities' inboxes.

    ``send`` raises :class:`mcastlab.errors.DeliveryError` (with a status from STATUSES) on failure;
    the coordinator turns that into the identity's status. In publish mode a backend may buffer
    sends; ``flush`` is called once per fan-out, with that fan-out's ``message_id``, and confirms (or
    fails) its buffered sends.
    """

    name: str
    modes: Sequence[str]
    capabilities: Capabilities

    async def open(self, runtime: Runtime) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Message, *, mode: str, timeout: float) -> None: ...

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None: ...

    def inbox(self, identity: str) -> Any:
        """An async context manager yielding an :class:`Inbox` for ``identity``."""
        ...


@runtime_checkable
class BatchPublisher(Protocol):
    """Messaging that takes a whole publish fan-out in one call (``Capabilities.publish_batch``)."""

    async def publish_batch(self, message_id: str, payload: bytes, identities: Sequence[str], *,
                            sent_at: float) -> dict[str, str]:
        """Buffer one publish per identity; return the statuses of the failures only."""
        ...


@runtime_checkable
class StoredCount(Protocol):
    """A registry that can tell how many identities it stores (``Capabilities.stored_count``)."""

    async def identities(self) -> int:
        """Identities stored: live, or expired but not yet swept."""
        ...


@dataclass(frozen=True, slots=True)
class DurableRecord:
    """A multicast as the durability slot stores it."""

    message_id: str
    filter: str
    payload: bytes
    created_at: float
    targets: tuple[str, ...] = ()


@runtime_checkable
class Durability(Protocol):
    """Optional slot: persists multicasts before fan-out so missed messages can be replayed."""

    name: str

    async def open(self, runtime: Runtime) -> None: ...

    async def close(self) -> None: ...

    async def record(self, rec: DurableRecord) -> None: ...

    async def outcome(self, message_id: str, statuses: dict[str, str], *, now: float) -> None: ...

    async def pending(self, identity: str, *, since: float) -> list[Message]: ...


__all__ = [
    "DELIVERED",
    "ERROR",
    "MODES",
    "NO_CAPABILITIES",
    "NO_LISTENER",
    "STATUSES",
    "TIMEOUT",
    "UNAVAILABLE",
    "BatchPublisher",
    "Capabilities",
    "Durability",
    "DurableRecord",
    "ExpiredIdentity",
    "Inbox",
    "Message",
    "Messaging",
    "Registry",
    "StoredCount",
]
