"""A naive scan-everything registry: the same-run baseline for the embedded registry's indexes."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from mcastlab.backends.base import NO_CAPABILITIES, ExpiredIdentity
from mcastlab.errors import RegistryFullError
from mcastlab.filters import CompiledFilter
from mcastlab.identity import Identity


class NaiveRegistry:
    """Dict of identities; every query and sweep scans all of them (what the reference POC does)."""

    name = "naive"
    capabilities = NO_CAPABILITIES

    def __init__(self) -> None:
        self.items: dict[str, Identity] = {}

    async def open(self, runtime: Any = None) -> None:
        return None

    async def close(self) -> None:
        return None

    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        new = identity.id not in self.items
        if new and max_identities is not None and len(self.items) >= max_identities:
            raise RegistryFullError("full", limit=max_identities)
        self.items[identity.id] = identity
        return new

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        old = self.items.get(identity_id)
        if old is None or not old.alive(now):
            return None
        self.items[identity_id] = new = Identity(old.id, old.metadata, old.registered_at, expires_at)
        return new

    async def remove(self, identity_id: str) -> bool:
        return self.items.pop(identity_id, None) is not None

    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        i = self.items.get(identity_id)
        return i if i is not None and i.alive(now) else None

    async def query(self, flt: CompiledFilter, *, now: float) -> list[Identity]:
        return [i for i in self.items.values() if i.alive(now) and flt.predicate(i.metadata)]

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        return [i.id for i in await self.query(flt, now=now)]

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        return len(await self.query(flt, now=now))

    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        dead = [i for i in self.items.values() if not i.alive(now)][:limit]
        for i in dead:
            del self.items[i.id]
        return [ExpiredIdentity(i.id, i.expires_at or now) for i in dead]

    async def next_deadline(self) -> float | None:
        return min((i.expires_at for i in self.items.values() if i.expires_at is not None), default=None)


def frozen(md: dict[str, object]) -> MappingProxyType[str, object]:
    return MappingProxyType(md)
