"""PostgresRegistry: the registry slot in PostgreSQL (asyncpg; asyncio runtime only).

Theory of operation
-------------------
One table (default ``identities``)::

    id text PRIMARY KEY, metadata jsonb, doc text, registered_at double precision,
    expires_at double precision NULL

``metadata`` is what filters and indexes read; ``doc`` is the metadata JSON exactly as registered, which
is what reads return (``jsonb`` would reorder keys and turn a float such as ``1e20`` into an int). A GIN
``jsonb_path_ops`` index on ``metadata`` answers ``metadata @> '{"field": value}'`` for any field, nested
ones included; a btree index on ``expires_at`` serves live-row checks, claims and ``next_deadline``.

* Filters are compiled by :func:`mcastlab.filters.to_sql` into a parameterised WHERE fragment (``$n``
  placeholders); the registry's own parameters are numbered after the fragment's, so the fragment is
  used verbatim. Equality and ``in`` leaves also become a ``@>`` pre-filter (:mod:`._sql_index`) that
  the GIN index answers; a non-exact fragment is re-checked with the Python predicate.
* Expiry: alive while ``now < expires_at``; every read adds that condition.
* ``upsert``: one ``UPDATE`` when the identity is alive (a re-register never waits on a lock);
  otherwise an ``INSERT ... ON CONFLICT DO UPDATE``. With ``max_identities`` the insert runs in a
  transaction holding an advisory lock per table, so counting live rows and inserting are atomic across
  coordinators and processes.
* ``claim_expired``: ``WITH c AS MATERIALIZED (SELECT id ... WHERE expires_at <= now ORDER BY
  expires_at LIMIT n FOR UPDATE SKIP LOCKED) DELETE ... USING c RETURNING id, expires_at``. A row is
  locked by one sweeper, skipped by the others, and deleted (so returned and counted) exactly once.
* A register that finds its id lapsed (past its deadline, not yet swept) locks that row (``FOR UPDATE``,
  so a claim holding it wins and counts it) and, in the same statement as the insert, records the lapsed
  lifetime in ``<table>_lapsed``; claims take those rows first, so the lifetime is still counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mcastlab.backends._sql_common import (
    check_name,
    dump_metadata,
    full_error,
    make_identities,
    make_identity,
    quote,
)
from mcastlab.backends._sql_index import number_params, pg_leaf, prefilter
from mcastlab.backends._sql_pg import PgPool
from mcastlab.backends.base import Capabilities, ExpiredIdentity
from mcastlab.filters import to_sql
from mcastlab.identity import Identity

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter

_COLUMNS = "id, doc, registered_at, expires_at"
_SET = ("metadata = EXCLUDED.metadata, doc = EXCLUDED.doc, registered_at = EXCLUDED.registered_at, "
        "expires_at = EXCLUDED.expires_at")
_BULK_BATCH = 10_000


class PostgresRegistry:
    """Identities in PostgreSQL with JSONB metadata; see the module docstring."""

    name = "postgres"
    capabilities = Capabilities(stored_count=True)

    def __init__(self, dsn: str, *, table: str = "identities", pool_size: int = 8, timeout: float = 10.0,
                 server_settings: Mapping[str, str] | None = None) -> None:
        self.table = check_name(table, "table")
        self._t = quote(table)
        self._lapsed = quote(f"{table}_lapsed")
        # Filter selectivity depends on the values, so a generic plan for a prepared query is often
        # a poor one (asyncpg prepares every query): plan each execution with its parameters.
        settings = {"plan_cache_mode": "force_custom_plan", **(server_settings or {})}
        self._pool = PgPool(dsn, pool_size=pool_size, timeout=timeout, backend=self.name,
                            server_settings=settings)
        self._leaf = pg_leaf("metadata")

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Any = None) -> None:
        """Connect and create the table and indexes on first open (reference counted)."""
        t, name = self._t, self.table
        await self._pool.open(f"""
            CREATE TABLE IF NOT EXISTS {t} (
                id text PRIMARY KEY, metadata jsonb NOT NULL, doc text NOT NULL,
                registered_at double precision NOT NULL, expires_at double precision);
            CREATE INDEX IF NOT EXISTS "{name}_expires" ON {t} (expires_at);
            CREATE INDEX IF NOT EXISTS "{name}_metadata" ON {t} USING gin (metadata jsonb_path_ops);
            CREATE TABLE IF NOT EXISTS {self._lapsed} (
                id text NOT NULL, expires_at double precision NOT NULL);
        """)

    async def close(self) -> None:
        """Close the pool when the last opener closes."""
        await self._pool.close()

    # ------------------------------------------------------------------ writes
    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        """Insert or replace; True if the identity was new (or had expired). Atomic limit check."""
        t = self._t
        args = (identity.id, dump_metadata(identity.metadata), identity.registered_at, identity.expires_at)
        # the lapsed lifetime is recorded before the row is replaced: the main insert reads ``lapsed`` (an
        # unread data-modifying CTE would run last, and then no longer see the row it should lock)
        insert = (f"WITH old AS (SELECT id, expires_at FROM {t} WHERE id = $1 AND expires_at <= $5 "
                  "FOR UPDATE), "
                  f"lapsed AS (INSERT INTO {self._lapsed} (id, expires_at) SELECT id, expires_at FROM old "
                  "RETURNING 1) "
                  f"INSERT INTO {t} (id, metadata, doc, registered_at, expires_at) "
                  "SELECT $1::text, $2::text::jsonb, $2::text, $3::float8, $4::float8 "
                  f"FROM (SELECT count(*) FROM lapsed) AS done ON CONFLICT (id) DO UPDATE SET {_SET}")
        async with self._pool.conn() as conn:
            done = await conn.execute(
                f"UPDATE {t} SET metadata = $2::text::jsonb, doc = $2::text, registered_at = $3, "
                "expires_at = $4 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $5)", *args, now)
            if done != "UPDATE 0":
                return False
            if max_identities is None:
                await conn.execute(insert, *args, now)
                return True
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"mcastlab:{self.table}")
                live = await conn.fetchval(
                    f"SELECT count(*) FROM (SELECT 1 FROM {t} "
                    "WHERE (expires_at IS NULL OR expires_at > $1) AND id <> $2 LIMIT $3) AS s",
                    now, identity.id, max_identities)
                if live >= max_identities:
                    raise full_error(live, max_identities)
                await conn.execute(insert, *args, now)
        return True

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        """Move a live identity's deadline; the updated identity, or None if absent/expired."""
        async with self._pool.conn() as conn:
            row = await conn.fetchrow(
                f"UPDATE {self._t} SET expires_at = $2 "
                f"WHERE id = $1 AND (expires_at IS NULL OR expires_at > $3) RETURNING {_COLUMNS}",
                identity_id, expires_at, now)
        return None if row is None else make_identity(*row)

    async def remove(self, identity_id: str) -> bool:
        """Delete; True if a row was there. Idempotent."""
        async with self._pool.conn() as conn:
            done = await conn.execute(f"DELETE FROM {self._t} WHERE id = $1", identity_id)
        return done != "DELETE 0"

    # ------------------------------------------------------------------ reads
    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        """The live identity ``identity_id``, or None."""
        async with self._pool.conn() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {self._t} "
                                      "WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                                      identity_id, now)
        return None if row is None else make_identity(*row)

    def where(self, flt: CompiledFilter, now: float) -> tuple[str, list[Any], bool]:
        """WHERE clause, parameters, and whether it is exact (no predicate re-check needed)."""
        if flt.matches_all:
            return "(expires_at IS NULL OR expires_at > $1)", [now], True
        frag = to_sql(flt.filter, dialect="postgres", column="metadata")
        n = len(frag.params) + 1
        sql = f"({frag.sql}) AND (expires_at IS NULL OR expires_at > ${n})"
        params = [*frag.params, now]
        pre = prefilter(flt.filter, self._leaf)
        if pre is not None:
            sql = f"{sql} AND ({number_params(pre[0], n + 1)})"
            params.extend(pre[1])
        return sql, params, frag.exact

    async def query(self, flt: CompiledFilter, *, now: float) -> list[Identity]:
        """Live identities matching ``flt`` (unordered)."""
        where, params, exact = self.where(flt, now)
        async with self._pool.conn() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM {self._t} WHERE {where}", *params)
        return make_identities(rows, None if exact else flt.predicate)

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        """The ids of the live identities matching ``flt``: ``SELECT id`` when the SQL is exact, else the
        candidates' documents are read and tested."""
        where, params, exact = self.where(flt, now)
        if not exact:
            return [i.id for i in await self.query(flt, now=now)]
        async with self._pool.conn() as conn:
            rows = await conn.fetch(f"SELECT id FROM {self._t} WHERE {where}", *params)
        return [r[0] for r in rows]

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        """How many live identities match ``flt``."""
        where, params, exact = self.where(flt, now)
        if not exact:
            return len(await self.query(flt, now=now))
        async with self._pool.conn() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {self._t} WHERE {where}", *params))

    # ------------------------------------------------------------------ expiry
    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        """Delete up to ``limit`` identities with deadline <= now (lapsed lifetimes first) and return them,
        each exactly once."""
        rows: list[Any] = []
        async with self._pool.conn() as conn:
            for table, key in ((self._lapsed, "ctid"), (self._t, "id")):
                rows += await conn.fetch(
                    f"WITH c AS MATERIALIZED (SELECT {key} FROM {table} WHERE expires_at <= $1 ORDER BY "
                    f"expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) DELETE FROM {table} AS t USING c "
                    f"WHERE t.{key} = c.{key} RETURNING t.id, t.expires_at", now, limit - len(rows))
                if len(rows) >= limit:
                    break
        pairs = sorted((r[1], r[0]) for r in rows)
        return [ExpiredIdentity(identity_id, deadline) for deadline, identity_id in pairs]

    async def next_deadline(self) -> float | None:
        """The earliest stored deadline (a lapsed lifetime's included), or None."""
        async with self._pool.conn() as conn:
            return await conn.fetchval(f"SELECT least((SELECT min(expires_at) FROM {self._t}), "
                                       f"(SELECT min(expires_at) FROM {self._lapsed}))")

    async def identities(self) -> int:
        """How many identities are stored (live, or expired but not yet swept)."""
        async with self._pool.conn() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {self._t}"))

    # ------------------------------------------------------------------ tools
    async def bulk_load(self, identities: Iterable[Identity]) -> int:
        """Insert or replace many identities, batched, with no limit check (benchmarks, imports)."""
        rows = [(i.id, dump_metadata(i.metadata), i.registered_at, i.expires_at) for i in identities]
        t = self._t
        async with self._pool.conn() as conn:
            for start in range(0, len(rows), _BULK_BATCH):
                cols = list(zip(*rows[start:start + _BULK_BATCH], strict=True))
                await conn.execute(
                    f"INSERT INTO {t} (id, metadata, doc, registered_at, expires_at) "
                    "SELECT a, b::jsonb, b, c, d "
                    "FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[]) AS u(a, b, c, d) "
                    f"ON CONFLICT (id) DO UPDATE SET {_SET}",
                    *(list(c) for c in cols))
            await conn.execute(f"VACUUM ANALYZE {t}")
        return len(rows)

    async def explain(self, flt: CompiledFilter, *, now: float) -> str:
        """PostgreSQL's plan for ``query(flt)`` (to check that an index is used)."""
        where, params, _ = self.where(flt, now)
        async with self._pool.conn() as conn:
            rows = await conn.fetch(f"EXPLAIN SELECT {_COLUMNS} FROM {self._t} WHERE {where}", *params)
        return "\n".join(r[0] for r in rows)


__all__ = ["PostgresRegistry"]
