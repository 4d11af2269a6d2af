"""PostgresDurability: the durability slot in PostgreSQL (asyncpg; asyncio runtime only).

Same model as :mod:`mcastlab.backends.sqlite_durability` (read its theory of operation): a
``{prefix}_messages`` table and a ``{prefix}_deliveries`` table with one row per (identity, message).
Each call is one statement (``record`` two, in one transaction), so a coordinator killed at any point
leaves either no trace of a multicast or the whole of it; several coordinators can share the tables.
``pending`` is one ``UPDATE ... FROM ... RETURNING``: the hand-out is counted in the same statement
that reads the messages, so concurrent replays for one identity each count their hand-out.
"""

from __future__ import annotations

from typing import Any

from mcastlab.backends._sql_common import (
    DELIVERED,
    PENDING,
    check_name,
    check_seconds,
    quote,
    replayed,
    split_statuses,
)
from mcastlab.backends._sql_pg import PgPool
from mcastlab.backends.base import DurableRecord, Message
from mcastlab.errors import ConfigError


class PostgresDurability:
    """Durable multicasts and per-identity outcomes in PostgreSQL; replay with ``pending``."""

    name = "postgres"

    def __init__(self, dsn: str, *, prefix: str = "mcast", pool_size: int = 4, timeout: float = 10.0,
                 retention: float | None = None) -> None:
        self.prefix = check_name(prefix, "prefix")
        self.retention = check_seconds(retention, "retention")
        self._pool = PgPool(dsn, pool_size=pool_size, timeout=timeout, backend="postgres-durability")
        self._m = quote(f"{prefix}_messages")
        self._d = quote(f"{prefix}_deliveries")
        self._next_purge = float("-inf")

    async def open(self, runtime: Any = None) -> None:
        """Connect and create the tables on first open (reference counted)."""
        m, d, p = self._m, self._d, self.prefix
        await self._pool.open(f"""
            CREATE TABLE IF NOT EXISTS {m} (
                message_id text PRIMARY KEY, filter text NOT NULL, payload bytea NOT NULL,
                created_at double precision NOT NULL, targets integer NOT NULL);
            CREATE INDEX IF NOT EXISTS "{p}_messages_created" ON {m} (created_at);
            CREATE TABLE IF NOT EXISTS {d} (
                identity text NOT NULL, message_id text NOT NULL, created_at double precision NOT NULL,
                status text NOT NULL DEFAULT '{PENDING}', handed_out integer NOT NULL DEFAULT 0,
                updated_at double precision, PRIMARY KEY (identity, message_id));
            CREATE INDEX IF NOT EXISTS "{p}_deliveries_created" ON {d} (created_at);
        """)

    async def close(self) -> None:
        """Close the pool when the last opener closes."""
        await self._pool.close()

    async def record(self, rec: DurableRecord) -> None:
        """Persist the multicast and a ``pending`` row per target (idempotent per message id)."""
        async with self._pool.conn() as conn, conn.transaction():
            await conn.execute(f"INSERT INTO {self._m} VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                               rec.message_id, rec.filter, bytes(rec.payload), rec.created_at,
                               len(rec.targets))
            if rec.targets:
                await conn.execute(
                    f"INSERT INTO {self._d} (identity, message_id, created_at) "
                    f"SELECT t, $2, $3 FROM unnest($1::text[]) AS t ON CONFLICT DO NOTHING",
                    list(rec.targets), rec.message_id, rec.created_at)
        if self.retention is not None and rec.created_at >= self._next_purge:
            self._next_purge = rec.created_at + self.retention / 10
            await self.purge(now=rec.created_at)

    async def outcome(self, message_id: str, statuses: dict[str, str], *, now: float) -> None:
        """Set each identity's status for ``message_id``; ``delivered`` is final."""
        if not statuses:
            return
        idents, values = split_statuses(statuses)
        async with self._pool.conn() as conn:
            await conn.execute(
                f"UPDATE {self._d} AS d SET status = s.status, updated_at = $4 "
                f"FROM unnest($2::text[], $3::text[]) AS s(identity, status) "
                f"WHERE d.message_id = $1 AND d.identity = s.identity AND d.status <> '{DELIVERED}'",
                message_id, idents, values, now)

    async def pending(self, identity: str, *, since: float) -> list[Message]:
        """``identity``'s undelivered messages from ``since`` on, oldest first; counts the hand-out."""
        async with self._pool.conn() as conn:
            rows = await conn.fetch(
                f"UPDATE {self._d} AS d SET handed_out = d.handed_out + 1 FROM {self._m} AS m "
                f"WHERE d.identity = $1 AND d.status <> '{DELIVERED}' AND d.created_at >= $2 "
                f"AND m.message_id = d.message_id "
                f"RETURNING d.message_id, m.payload, d.created_at, d.status, d.handed_out",
                identity, since)
        rows = sorted(rows, key=lambda r: (r[2], r[0]))
        return [replayed(r[0], r[1], identity, r[2], r[3], r[4]) for r in rows]

    async def purge(self, *, now: float, max_age: float | None = None) -> int:
        """Delete messages created before ``now - max_age`` (default: ``retention``); return how many."""
        age = self.retention if max_age is None else check_seconds(max_age, "max_age")
        if age is None:
            raise ConfigError("purge needs max_age= or PostgresDurability(retention=...)", key="retention")
        cutoff = now - age
        async with self._pool.conn() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._d} WHERE created_at < $1", cutoff)
            done = await conn.execute(f"DELETE FROM {self._m} WHERE created_at < $1", cutoff)
        return int(done.split()[-1])

    async def statuses(self, message_id: str) -> dict[str, str]:
        """Each target's current status for ``message_id`` (for tests and inspection)."""
        async with self._pool.conn() as conn:
            rows = await conn.fetch(f"SELECT identity, status FROM {self._d} WHERE message_id = $1",
                                    message_id)
        return {r[0]: r[1] for r in rows}

    async def messages(self) -> list[dict[str, Any]]:
        """Every stored message's id, filter, created_at and target count, oldest first."""
        async with self._pool.conn() as conn:
            rows = await conn.fetch(f"SELECT message_id, filter, created_at, targets FROM {self._m} "
                                    "ORDER BY created_at, message_id")
        return [dict(r) for r in rows]


__all__ = ["PostgresDurability"]
