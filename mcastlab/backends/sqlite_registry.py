"""SqliteRegistry: the registry slot in an embedded SQLite database (a file or ``:memory:``).

Theory of operation
-------------------
One table (default ``identities``)::

    id TEXT PRIMARY KEY, metadata TEXT (JSON), registered_at REAL, expires_at REAL NULL

with an index on ``expires_at`` (live-row checks, the sweeper's claims, ``next_deadline``) and one
expression index ``json_extract(metadata, '$.<field>')`` per field named in ``indexes=``.

* Filters are compiled by :func:`mcastlab.filters.to_sql` into a parameterised WHERE fragment over the
  JSON1 functions; values are always bound parameters. When the fragment is not exact the rows are
  re-checked with the filter's Python predicate. Filters on indexed fields also get an index-friendly
  pre-filter (:mod:`._sql_index`) so the planner can use those indexes.
* Expiry: an identity is alive while ``now < expires_at`` (NULL never expires); every read adds that
  condition, so an expired row is never returned even before it is swept.
* ``upsert`` runs in one ``BEGIN IMMEDIATE`` transaction (the database's write lock): it checks
  whether the id is alive, counts live rows against ``max_identities`` only for a new identity, and
  writes - atomic also against other processes using the same file.
* ``claim_expired`` is one ``DELETE ... RETURNING`` (SQLite >= 3.35; older versions fall back to
  SELECT + DELETE inside one write transaction). SQLite admits one writer at a time, so each expired
  row is deleted - and so returned and counted - by exactly one coordinator.
* A register that finds its id stored but lapsed (past its deadline, not yet swept) replaces the row, so
  it first records the lapsed lifetime in ``<table>_lapsed (id, expires_at)``, in the same transaction;
  claims take those rows first, so that lifetime is still counted once.

Calls are plain synchronous sqlite3 inside ``async def`` (no I/O waits to yield on), so the registry
works under both the asyncio and the SimPy runtime. Several coordinators may share one object (one
connection, reference counted); several processes may share one file (WAL mode, busy timeout).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mcastlab.backends._sql_common import (
    SQLITE_RETURNING,
    SqliteStore,
    check_name,
    dump_metadata,
    full_error,
    make_identities,
    make_identity,
    quote,
    sqlite_errors,
    sqlite_tx,
)
from mcastlab.backends._sql_index import is_simple_field, prefilter, sqlite_leaf, sqlite_path
from mcastlab.backends.base import Capabilities, ExpiredIdentity
from mcastlab.errors import ClosedError, ConfigError, FilterError
from mcastlab.filters import field_name, field_path, to_sql
from mcastlab.identity import Identity

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_COLUMNS = "id, metadata, registered_at, expires_at"


class SqliteRegistry(SqliteStore):
    """Identities in SQLite with JSON metadata; see the module docstring."""

    name = "sqlite"
    capabilities = Capabilities(stored_count=True)

    def __init__(self, path: str = ":memory:", *, table: str = "identities",
                 indexes: Iterable[str] = ()) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError(f"SqliteRegistry path must be a file path or ':memory:', got {path!r:.60}",
                              key="path")
        self.path = path
        self.table = check_name(table, "table")
        self.indexes = tuple(dict.fromkeys(self._index_field(f) for f in indexes))
        self._t = quote(table)
        self._lapsed = quote(f"{table}_lapsed")
        self._leaf = sqlite_leaf("metadata", frozenset(self.indexes))
        self._conn: sqlite3.Connection | None = None
        self._opens = 0

    @staticmethod
    def _index_field(field: object) -> str:
        try:
            name = field_name(field_path(field)) if isinstance(field, str) else None
        except FilterError:
            name = None
        if name is None or not is_simple_field(name):
            raise ConfigError(
                f"SqliteRegistry indexes= takes field names made of letters, digits and _ (dotted for "
                f"nested keys), got {field!r:.60}", key="indexes")
        return name

    # ------------------------------------------------------------------ lifecycle

    def _schema(self) -> str:
        t, name = self._t, self.table
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY NOT NULL, metadata TEXT NOT NULL, "
            "registered_at REAL NOT NULL, expires_at REAL)",
            f'CREATE INDEX IF NOT EXISTS "{name}_expires" ON {t} (expires_at)',
            f"CREATE TABLE IF NOT EXISTS {self._lapsed} (id TEXT NOT NULL, expires_at REAL NOT NULL)",
        ]
        for field in self.indexes:
            digest = hashlib.sha1(field.encode()).hexdigest()[:10]
            stmts.append(f'CREATE INDEX IF NOT EXISTS "{name}_md_{digest}" ON {t} '
                         f"(json_extract(metadata, '{sqlite_path(field)}'))")
        return ";\n".join(stmts) + ";"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ClosedError("SqliteRegistry is not open; pass it to a Coordinator or await open()")
        return self._conn

    # ------------------------------------------------------------------ writes
    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        """Insert or replace; True if the identity was new (or had expired). Atomic limit check."""
        conn = self._db()
        row = (identity.id, dump_metadata(identity.metadata), identity.registered_at, identity.expires_at)
        with sqlite_tx(conn, self.name):
            old = conn.execute(f"SELECT expires_at FROM {self._t} WHERE id = ?", (identity.id,)).fetchone()
            is_new = old is None or (old[0] is not None and old[0] <= now)
            if is_new and max_identities is not None:
                (live,) = conn.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {self._t} WHERE {_LIVE} LIMIT ?)",
                    (now, max_identities)).fetchone()
                if live >= max_identities:
                    raise full_error(live, max_identities)
            if is_new and old is not None:
                conn.execute(f"INSERT INTO {self._lapsed} (id, expires_at) VALUES (?, ?)",
                             (identity.id, old[0]))
            conn.execute(
                f"INSERT INTO {self._t} ({_COLUMNS}) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "metadata = excluded.metadata, registered_at = excluded.registered_at, "
                "expires_at = excluded.expires_at", row)
        return is_new

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        """Move a live identity's deadline; the updated identity, or None if absent/expired."""
        conn = self._db()
        with sqlite_tx(conn, self.name):
            if SQLITE_RETURNING:
                row = conn.execute(f"UPDATE {self._t} SET expires_at = ? WHERE id = ? AND {_LIVE} "
                                   f"RETURNING {_COLUMNS}", (expires_at, identity_id, now)).fetchone()
            else:  # pragma: no cover - SQLite < 3.35
                row = conn.execute(f"SELECT {_COLUMNS} FROM {self._t} WHERE id = ? AND {_LIVE}",
                                   (identity_id, now)).fetchone()
                if row is not None:
                    conn.execute(f"UPDATE {self._t} SET expires_at = ? WHERE id = ?",
                                 (expires_at, identity_id))
                    row = (*row[:3], expires_at)
        return None if row is None else make_identity(*row)

    async def remove(self, identity_id: str) -> bool:
        """Delete; True if a row was there. Idempotent."""
        with sqlite_errors(self.name):
            return self._db().execute(f"DELETE FROM {self._t} WHERE id = ?", (identity_id,)).rowcount > 0

    # ------------------------------------------------------------------ reads
    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        """The live identity ``identity_id``, or None."""
        with sqlite_errors(self.name):
            row = self._db().execute(f"SELECT {_COLUMNS} FROM {self._t} WHERE id = ? AND {_LIVE}",
                                     (identity_id, now)).fetchone()
        return None if row is None else make_identity(*row)

    def where(self, flt: CompiledFilter, now: float) -> tuple[str, list[Any], bool]:
        """WHERE clause, parameters, and whether it is exact (no predicate re-check needed)."""
        if flt.matches_all:
            return _LIVE, [now], True
        frag = to_sql(flt.filter, dialect="sqlite", column="metadata")
        sql, params = f"{_LIVE} AND ({frag.sql})", [now, *frag.params]
        pre = prefilter(flt.filter, self._leaf)
        if pre is not None:
            sql, params = f"{sql} AND ({pre[0]})", [*params, *pre[1]]
        return sql, params, frag.exact

    async def query(self, flt: CompiledFilter, *, now: float) -> list[Identity]:
        """Live identities matching ``flt`` (unordered)."""
        where, params, exact = self.where(flt, now)
        with sqlite_errors(self.name):
            rows = self._db().execute(f"SELECT {_COLUMNS} FROM {self._t} WHERE {where}", params).fetchall()
        return make_identities(rows, None if exact else flt.predicate)

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        """The ids of the live identities matching ``flt``: ``SELECT id`` when the SQL is exact, else the
        candidates' metadata is read and tested."""
        where, params, exact = self.where(flt, now)
        if not exact:
            return [i.id for i in await self.query(flt, now=now)]
        with sqlite_errors(self.name):
            rows = self._db().execute(f"SELECT id FROM {self._t} WHERE {where}", params).fetchall()
        return [r[0] for r in rows]

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        """How many live identities match ``flt``."""
        where, params, exact = self.where(flt, now)
        if not exact:
            return len(await self.query(flt, now=now))
        with sqlite_errors(self.name):
            (n,) = self._db().execute(f"SELECT count(*) FROM {self._t} WHERE {where}", params).fetchone()
        return int(n)

    # ------------------------------------------------------------------ expiry
    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        """Delete up to ``limit`` identities with deadline <= now (lapsed lifetimes first) and return them,
        each exactly once."""
        conn = self._db()
        rows: list[Any] = []
        with sqlite_tx(conn, self.name):
            for table in (self._lapsed, self._t):
                pick = f"SELECT rowid FROM {table} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
                args = (now, limit - len(rows))
                if SQLITE_RETURNING:
                    got = conn.execute(f"DELETE FROM {table} WHERE rowid IN ({pick}) "
                                       "RETURNING id, expires_at", args).fetchall()
                else:  # pragma: no cover - SQLite < 3.35
                    got = conn.execute(f"SELECT id, expires_at FROM {table} WHERE rowid IN ({pick})",
                                       args).fetchall()
                    conn.execute(f"DELETE FROM {table} WHERE rowid IN ({pick})", args)
                rows += got
                if len(rows) >= limit:
                    break
        rows.sort(key=lambda r: (r[1], r[0]))
        return [ExpiredIdentity(identity_id, deadline) for identity_id, deadline in rows]

    async def next_deadline(self) -> float | None:
        """The earliest stored deadline (a lapsed lifetime's included), or None."""
        with sqlite_errors(self.name):
            (deadline,) = self._db().execute(
                f"SELECT min(d) FROM (SELECT min(expires_at) AS d FROM {self._t} "
                f"UNION ALL SELECT min(expires_at) FROM {self._lapsed})").fetchone()
        return deadline

    async def identities(self) -> int:
        """How many identities are stored (live, or expired but not yet swept)."""
        with sqlite_errors(self.name):
            (n,) = self._db().execute(f"SELECT count(*) FROM {self._t}").fetchone()
        return int(n)

    # ------------------------------------------------------------------ tools
    async def bulk_load(self, identities: Iterable[Identity]) -> int:
        """Insert or replace many identities in one transaction, with no limit check (benchmarks)."""
        conn = self._db()
        rows = [(i.id, dump_metadata(i.metadata), i.registered_at, i.expires_at) for i in identities]
        with sqlite_tx(conn, self.name):
            conn.executemany(f"INSERT OR REPLACE INTO {self._t} ({_COLUMNS}) VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def explain(self, flt: CompiledFilter, *, now: float) -> str:
        """SQLite's query plan for ``query(flt)`` (to check that an index is used)."""
        where, params, _ = self.where(flt, now)
        with sqlite_errors(self.name):
            rows = self._db().execute(f"EXPLAIN QUERY PLAN SELECT {_COLUMNS} FROM {self._t} WHERE {where}",
                                      params).fetchall()
        return "\n".join(str(r[-1]) for r in rows)


__all__ = ["SqliteRegistry"]
