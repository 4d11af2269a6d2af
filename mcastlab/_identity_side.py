"""The identity's side of the coordinator's API: its ``inbox``, and ``replay`` / ``ack`` of the messages it
missed (the durability slot)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcastlab._guard import Guard
from mcastlab.backends.base import DELIVERED, Durability, Message, Messaging
from mcastlab.errors import UnsupportedError, UsageError, preview
from mcastlab.identity import validate_identity

if TYPE_CHECKING:
    from mcastlab.runtime.base import Runtime


class IdentitySide:
    """``inbox``, ``replay`` and ``ack``, mixed into the Coordinator (which provides the attributes below)."""

    durability: Durability | None
    messaging: Messaging
    runtime: Runtime

    if TYPE_CHECKING:  # provided by the Coordinator

        @property
        def backend_name(self) -> str: ...

        async def _ready(self) -> None: ...

        def _failed(self, op: str, t0: float, exc: BaseException, identity: str = "") -> None: ...

        def _count_error(self, op: str, kind: str) -> None: ...

    @asynccontextmanager
    async def inbox(self, identity: str) -> AsyncIterator[Any]:
        """The identity's side: ``async with c.inbox("dev-1") as box: msg = await box.get(timeout=1)``."""
        name = validate_identity(identity)
        await self._ready()
        with Guard(self, "inbox", self.runtime.now(), identity):
            cm = self.messaging.inbox(name)
            box = await cm.__aenter__()
        try:
            yield box
        except BaseException as exc:
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await cm.__aexit__(None, None, None)

    def _journal(self, what: str) -> Durability:
        if self.durability is None:
            raise UnsupportedError(f"{what} needs a durability backend: "
                                   "Coordinator(durability=SqliteDurability(...)) or PostgresDurability(...)")
        return self.durability

    async def replay(self, identity: str, *, since: float = 0.0) -> list[Message]:
        """Messages ``identity`` missed since ``since`` (needs a durability backend)."""
        name = validate_identity(identity)
        journal = self._journal("replay")
        try:
            number = isinstance(since, int | float) and not isinstance(since, bool)
            since_s = float(since) if number else math.nan
        except OverflowError:  # an int beyond the float range
            since_s = math.nan
        if since_s != since_s:
            raise UsageError(f"since must be a time in seconds on the coordinator's clock (e.g. 0 for "
                             f"everything), got {preview(since)}")
        await self._ready()
        with Guard(self, "replay", self.runtime.now(), identity):
            return await journal.pending(name, since=since_s)

    async def ack(self, identity: str, message_ids: Any) -> None:
        """Record that ``identity`` now holds these replayed messages, so they are not offered again."""
        name = validate_identity(identity)
        journal = self._journal("ack")
        ids = [message_ids] if isinstance(message_ids, str) else message_ids
        listed = isinstance(ids, list | tuple | set | frozenset)
        if not listed or not all(isinstance(m, str) and m for m in ids):
            raise UsageError(f"message_ids must be a message id (Message.id) or a list of them, "
                             f"got {preview(message_ids, 80)}")
        await self._ready()
        with Guard(self, "ack", self.runtime.now(), identity):
            for mid in ids:
                await journal.outcome(mid, {name: DELIVERED}, now=self.runtime.now())


__all__ = ["IdentitySide"]
