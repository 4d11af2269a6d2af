"""Embedded backends (the default, no servers): an indexed in-memory registry and in-process inboxes.

MemoryRegistry keeps one secondary index per top-level scalar field ({field: {token: {id: None}}}; dicts
as insertion-ordered sets, so results come out in a deterministic order), so equality and ``in``
filters cost O(matches) rather than O(registry); when the index answers a filter exactly the predicate
is not even run. A lazy min-heap of deadlines serves expiry (stale entries are skipped when popped).
It never reads a clock.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mcastlab.backends.base import DELIVERED, NO_LISTENER, Capabilities, ExpiredIdentity, Message
from mcastlab.errors import ClosedError, DeliveryError, RegistryFullError
from mcastlab.filters import AllOf, AnyOf, Term, index_token
from mcastlab.identity import Identity
from mcastlab.runtime.base import Mailbox

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter
    from mcastlab.runtime.base import Runtime


class MemoryRegistry:
    """In-process registry with secondary indexes and a deadline heap. Shareable by coordinators.

    Indexes are adaptive: a top-level field is indexed the first time a filter plans a lookup on it
    (one scan), then maintained on every write; ``indexes=`` declares fields to index from the start
    and ``adaptive=False`` limits indexing to those. So registering identities with many metadata
    fields costs only for the fields that are actually queried.
    """

    name = "memory"
    capabilities = Capabilities(stored_count=True)

    def __init__(self, *, indexes: Iterable[str] = (), adaptive: bool = True) -> None:
        self._items: dict[str, Identity] = {}
        self._index: dict[str, dict[str, dict[str, None]]] = {f: {} for f in indexes}
        self._adaptive = adaptive
        self._heap: list[tuple[float, str]] = []
        # lifetimes that ended unswept and were then replaced by a re-register: still owed to the
        # sweeper, so every expiry is reported once even if the name lives on
        self._lapsed: list[ExpiredIdentity] = []
        self._opens = 0

    # lifecycle (reference counted: shared by several coordinators, closed by the last)
    async def open(self, runtime: Runtime | None = None) -> None:
        self._opens += 1

    async def close(self) -> None:
        self._opens = max(0, self._opens - 1)

    @property
    def indexed_fields(self) -> list[str]:
        return list(self._index)

    # writes
    def _add(self, identity: Identity) -> None:
        md, ident = identity.metadata, identity.id
        for field, by_token in self._index.items():
            value = md.get(field, _MISSING)
            if value is _MISSING:
                continue
            token = "s:" + value if type(value) is str else index_token(value)
            if token is None:
                continue
            bucket = by_token.get(token)
            if bucket is None:
                by_token[token] = {ident: None}
            else:
                bucket[ident] = None

    def _drop(self, identity: Identity) -> None:
        md, ident = identity.metadata, identity.id
        for field, by_token in self._index.items():
            value = md.get(field, _MISSING)
            if value is _MISSING:
                continue
            token = "s:" + value if type(value) is str else index_token(value)
            bucket = by_token.get(token) if token is not None else None
            if bucket is not None:
                bucket.pop(ident, None)
                if not bucket:
                    del by_token[token]  # type: ignore[arg-type]

    def _build(self, field: str) -> dict[str, dict[str, None]]:
        """Index ``field`` over every stored identity (first planned lookup on it)."""
        by_token: dict[str, dict[str, None]] = {}
        for ident, item in self._items.items():
            value = item.metadata.get(field, _MISSING)
            if value is _MISSING:
                continue
            token = index_token(value)
            if token is not None:
                by_token.setdefault(token, {})[ident] = None
        self._index[field] = by_token
        return by_token

    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        old = self._items.get(identity.id)
        is_new = old is None or not old.alive(now)
        if is_new and old is not None and old.expires_at is not None:
            self._lapsed.append(ExpiredIdentity(old.id, old.expires_at))
        if old is None and max_identities is not None and len(self._items) >= max_identities:
            raise RegistryFullError(
                f"registry is full: {len(self._items)} identities stored, max_identities={max_identities}; "
                "raise Config.max_identities or unregister some",
                limit=max_identities,
            )
        if not isinstance(identity.metadata, MappingProxyType):
            identity = Identity(identity.id, MappingProxyType(dict(identity.metadata)),
                                identity.registered_at, identity.expires_at)
        if old is None:
            self._add(identity)
        elif old.metadata != identity.metadata:
            self._drop(old)
            self._add(identity)
        self._items[identity.id] = identity
        if identity.expires_at is not None:
            heapq.heappush(self._heap, (identity.expires_at, identity.id))
        return is_new

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        old = self._items.get(identity_id)
        if old is None or not old.alive(now):
            return None
        new = Identity(old.id, old.metadata, old.registered_at, expires_at)
        self._items[identity_id] = new
        if expires_at is not None:
            heapq.heappush(self._heap, (expires_at, identity_id))
        return new

    async def remove(self, identity_id: str) -> bool:
        old = self._items.pop(identity_id, None)
        if old is None:
            return False
        self._drop(old)
        return True

    # reads
    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        item = self._items.get(identity_id)
        if item is None or not item.alive(now):
            return None
        return item

    async def identities(self) -> int:
        """How many identities are stored (live, or expired but not yet swept)."""
        return len(self._items)

    def peek(self, identity_id: str) -> Identity | None:
        """The stored record whatever its deadline (expired-but-unswept included); for simulators."""
        return self._items.get(identity_id)

    def _candidates(self, plan: Any) -> Any:
        """Ids the plan selects, as an ordered dict-set (or set), or None when it needs a full scan."""
        if isinstance(plan, Term):
            by_token = self._index.get(plan.field)
            if by_token is None:
                if not self._adaptive:
                    return None
                by_token = self._build(plan.field)
            return by_token.get(plan.token, {})
        if isinstance(plan, AnyOf):
            out: dict[str, None] = {}
            for part in plan.parts:
                got = self._candidates(part)
                if got is None:
                    return None
                out.update(dict.fromkeys(got))
            return out
        if isinstance(plan, AllOf):
            sets = [got for got in map(self._candidates, plan.parts) if got is not None]
            if not sets:
                return None
            sets.sort(key=len)
            first, rest = sets[0], sets[1:]
            return [c for c in first if all(c in other for other in rest)] if rest else first
        return None

    def _select(self, flt: CompiledFilter, now: float) -> list[Identity]:
        items = self._items
        if flt.matches_all:
            return [i for i in items.values() if i.expires_at is None or now < i.expires_at]
        pred = flt.predicate
        cands = self._candidates(flt.plan) if flt.plan is not None else None
        if cands is None:
            pool: Any = items.values()
        else:
            pool = [items[c] for c in cands]
            if flt.exact:
                return [i for i in pool if i.expires_at is None or now < i.expires_at]
        return [i for i in pool if (i.expires_at is None or now < i.expires_at) and pred(i.metadata)]

    async def query(self, flt: CompiledFilter, *, now: float) -> list[Identity]:
        return self._select(flt, now)

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        items = self._items
        if flt.matches_all:
            return [k for k, i in items.items() if i.expires_at is None or now < i.expires_at]
        if flt.exact and flt.plan is not None:  # the index sets are the answer: no record is built
            cands = self._candidates(flt.plan)
            if cands is not None:
                out = []
                for c in cands:
                    e = items[c].expires_at
                    if e is None or now < e:
                        out.append(c)
                return out
        return [i.id for i in self._select(flt, now)]

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        return len(self._select(flt, now))

    # expiry
    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        out: list[ExpiredIdentity] = []
        if self._lapsed:
            out, self._lapsed = self._lapsed[:limit], self._lapsed[limit:]
        heap, items = self._heap, self._items
        while heap and heap[0][0] <= now and len(out) < limit:
            deadline, identity_id = heapq.heappop(heap)
            item = items.get(identity_id)
            if item is None or item.expires_at != deadline:
                continue  # stale entry: re-registered, touched or removed since
            del items[identity_id]
            self._drop(item)
            out.append(ExpiredIdentity(identity_id, deadline))
        return out

    async def next_deadline(self) -> float | None:
        if self._lapsed:
            return self._lapsed[0].deadline  # already past: sweep now
        heap, items = self._heap, self._items
        while heap:
            deadline, identity_id = heap[0]
            item = items.get(identity_id)
            if item is not None and item.expires_at == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def __len__(self) -> int:
        return len(self._items)


_MISSING = object()


class MemoryInbox:
    """One listener on an identity's inbox; receipt is acknowledged when the message is queued."""

    def __init__(self, identity: str, runtime: Runtime) -> None:
        self.identity = identity
        self._runtime = runtime
        self._mailbox: Mailbox[Message] = Mailbox(runtime)
        self.received = 0

    def deliver(self, message: Message) -> None:
        self.received += 1
        self._mailbox.put(message)

    async def get(self, timeout: float | None = None) -> Message:
        return await self._mailbox.get(timeout)

    def get_nowait(self) -> Message | None:
        return self._mailbox.get_nowait()

    def __len__(self) -> int:
        return len(self._mailbox)


class Listeners(dict[str, list[MemoryInbox]]):
    """Who listens on which identity's inbox: the in-process subscription table of the embedded and
    the simulated messaging backends."""

    @asynccontextmanager
    async def listen(self, identity: str, runtime: Runtime) -> AsyncIterator[MemoryInbox]:
        """Listen on ``identity``'s inbox for the duration of the ``async with`` block."""
        box = MemoryInbox(identity, runtime)
        self.setdefault(identity, []).append(box)
        try:
            yield box
        finally:
            boxes = self.get(identity, [])
            if box in boxes:
                boxes.remove(box)
            if not boxes:
                self.pop(identity, None)


class MemoryMessaging:
    """In-process messaging: one inbox (or several listeners) per identity, shared by coordinators."""

    name = "memory"
    modes: Sequence[str] = ("publish", "ack")
    # send never blocks, so the coordinator need not wrap it in a timeout nor fan out through a window
    capabilities = Capabilities(self_timed=True, inline_modes=("publish", "ack"))

    def __init__(self) -> None:
        self._listeners = Listeners()
        self._runtime: Runtime | None = None
        self._opens = 0

    async def open(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._opens += 1

    async def close(self) -> None:
        self._opens = max(0, self._opens - 1)

    async def send(self, message: Message, *, mode: str, timeout: float) -> None:
        runtime = self._runtime
        if runtime is None:
            raise ClosedError("MemoryMessaging is not open; use it through 'async with Coordinator(...)'")
        listeners = self._listeners.get(message.identity)
        if not listeners:
            if mode == "ack":
                raise DeliveryError(f"no listener on {message.identity!r}", status=NO_LISTENER,
                                    backend=self.name)
            return  # publish: accepted by the "server"; nobody was subscribed
        now = runtime.now()
        received = Message(message.id, message.payload, message.identity, message.sent_at,
                           message.attempt, message.redelivery, now)
        for inbox in listeners:
            inbox.deliver(received)

    async def flush(self, timeout: float, *, message_id: str | None = None) -> None:
        return None

    def inbox(self, identity: str) -> Any:
        """An async context manager listening on ``identity``'s inbox."""
        if self._runtime is None:
            raise ClosedError("MemoryMessaging is not open; use it through 'async with Coordinator(...)'")
        return self._listeners.listen(identity, self._runtime)

    def listening(self, identity: str) -> bool:
        return bool(self._listeners.get(identity))


__all__ = ["DELIVERED", "Listeners", "MemoryInbox", "MemoryMessaging", "MemoryRegistry"]
