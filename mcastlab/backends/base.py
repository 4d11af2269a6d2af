"""Backend protocols: the three slots of the pattern (registry, messaging, durability).

Backends never read a clock: every method that needs the time takes ``now`` from the caller
(the coordinator, which reads it from its runtime). Live backends (Redis, NATS, PostgreSQL) are
asyncio-only; the embedded memory backends work under any runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class ExpiredIdentity:
    """An identity claimed by a sweep: removed from the registry, to be counted exactly once."""

    id: str
    deadline: float


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

    async def open(self) -> None: ...

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

    async def query(self, flt: CompiledFilter, *, now: float) -> list[Identity]: ...

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

    async def open(self, runtime: Runtime) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Message, *, mode: str, timeout: float) -> None: ...

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None: ...

    def inbox(self, identity: str) -> Any:
        """An async context manager yielding an :class:`Inbox` for ``identity``."""
        ...


@dataclass(slots=True)
class DurableRecord:
    """A multicast as the durability slot stores it."""

    message_id: str
    filter: str
    payload: bytes
    created_at: float
    targets: list[str] = field(default_factory=list)


@runtime_checkable
class Durability(Protocol):
    """Optional slot: persists multicasts before fan-out so missed messages can be replayed."""

    name: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record(self, rec: DurableRecord) -> None: ...

    async def outcome(self, message_id: str, statuses: dict[str, str], *, now: float) -> None: ...

    async def pending(self, identity: str, *, since: float) -> list[Message]: ...


__all__ = [
    "DELIVERED",
    "ERROR",
    "MODES",
    "NO_LISTENER",
    "STATUSES",
    "TIMEOUT",
    "UNAVAILABLE",
    "Durability",
    "DurableRecord",
    "ExpiredIdentity",
    "Inbox",
    "Message",
    "Messaging",
    "Registry",
]
