"""SqliteDurability: the durability slot in an embedded SQLite file (no server).

Theory of operation
-------------------
Two tables (``{prefix}_messages`` and ``{prefix}_deliveries``):

* ``record`` stores the multicast (id, filter text, payload, created_at) and one delivery row per target
  with status ``pending`` in one transaction, *before* the coordinator fans out; with ``synchronous =
  FULL`` it survives the coordinator being killed at any point after ``record`` returns.
* ``outcome`` sets each listed identity's status (``delivered`` or a failure status). It may be called
  repeatedly and incrementally; a ``delivered`` row is never downgraded. Calling
  ``outcome(message_id, {identity: "delivered"}, now=...)`` is also how an identity acknowledges a
  replayed message.
* ``pending(identity, since=...)`` returns the identity's messages created at or after ``since`` whose
  status is not ``delivered``, oldest first, and counts the hand-out. At-least-once: a message is
  flagged ``redelivery=True`` when the identity may already hold it — it was handed out before, or the
  fan-out's outcome is unknown (``pending``: the coordinator died mid-fan-out) or ambiguous
  (``timeout``/``error``). ``attempt`` is 1 + the number of hand-outs (the fan-out was attempt 1).
* Retention by age: ``purge(now=..., max_age=...)`` deletes messages (and their delivery rows) created
  before ``now - max_age``; with ``retention=`` set, ``record`` does this itself every
  ``retention / 10`` seconds of message time.

All calls are plain synchronous sqlite3 inside ``async def``: it works under any runtime.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from mcastlab.backends._sql_common import (
    DELIVERED,
    PENDING,
    SqliteStore,
    check_name,
    check_seconds,
    quote,
    replayed,
    sqlite_errors,
    sqlite_tx,
)
from mcastlab.backends.base import DurableRecord, Message
from mcastlab.errors import ClosedError, ConfigError


class SqliteDurability(SqliteStore):
    """Durable multicasts and per-identity outcomes in SQLite; replay with ``pending``."""

    name = "sqlite"
    _synchronous = "FULL"  # a journal that survives power loss, not just a crash

    def __init__(self, path: str = ":memory:", *, prefix: str = "mcast",
                 retention: float | None = None) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError(f"SqliteDurability path must be a file path or ':memory:', got {path!r:.60}",
                              key="path")
        self.path = path
        self.prefix = check_name(prefix, "prefix")
        self.retention = check_seconds(retention, "retention")
        self._m = quote(f"{prefix}_messages")
        self._d = quote(f"{prefix}_deliveries")
        self._conn: sqlite3.Connection | None = None
        self._opens = 0
        self._next_purge = float("-inf")

    # ------------------------------------------------------------------ lifecycle

    def _schema(self) -> str:
        m, d, p = self._m, self._d, self.prefix
        return f"""
        CREATE TABLE IF NOT EXISTS {m} (
            message_id TEXT PRIMARY KEY, filter TEXT NOT NULL, payload BLOB NOT NULL,
            created_at REAL NOT NULL, targets INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS "{p}_messages_created" ON {m} (created_at);
        CREATE TABLE IF NOT EXISTS {d} (
            identity TEXT NOT NULL, message_id TEXT NOT NULL, created_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT '{PENDING}', handed_out INTEGER NOT NULL DEFAULT 0,
            updated_at REAL, PRIMARY KEY (identity, message_id)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS "{p}_deliveries_created" ON {d} (created_at);
        """

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ClosedError("SqliteDurability is not open; pass it to a Coordinator or await open()")
        return self._conn

    # ------------------------------------------------------------------ the slot
    async def record(self, rec: DurableRecord) -> None:
        """Persist the multicast and a ``pending`` row per target (idempotent per message id)."""
        conn = self._db()
        with sqlite_tx(conn, self.name):
            conn.execute(f"INSERT OR IGNORE INTO {self._m} VALUES (?, ?, ?, ?, ?)",
                         (rec.message_id, rec.filter, bytes(rec.payload), rec.created_at, len(rec.targets)))
            conn.executemany(
                f"INSERT OR IGNORE INTO {self._d} (identity, message_id, created_at) VALUES (?, ?, ?)",
                [(t, rec.message_id, rec.created_at) for t in rec.targets])
        if self.retention is not None and rec.created_at >= self._next_purge:
            self._next_purge = rec.created_at + self.retention / 10
            await self.purge(now=rec.created_at)

    async def outcome(self, message_id: str, statuses: dict[str, str], *, now: float) -> None:
        """Set each identity's status for ``message_id``; ``delivered`` is final."""
        conn = self._db()
        with sqlite_tx(conn, self.name):
            conn.executemany(
                f"UPDATE {self._d} SET status = ?, updated_at = ? "
                f"WHERE identity = ? AND message_id = ? AND status <> '{DELIVERED}'",
                [(str(s), now, ident, message_id) for ident, s in statuses.items()])

    async def pending(self, identity: str, *, since: float) -> list[Message]:
        """``identity``'s undelivered messages from ``since`` on, oldest first; counts the hand-out."""
        conn = self._db()
        where = f"d.identity = ? AND d.status <> '{DELIVERED}' AND d.created_at >= ?"
        with sqlite_tx(conn, self.name):
            rows = conn.execute(
                f"SELECT d.message_id, m.payload, d.created_at, d.status, d.handed_out + 1 "
                f"FROM {self._d} AS d JOIN {self._m} AS m ON m.message_id = d.message_id "
                f"WHERE {where} ORDER BY d.created_at, d.message_id", (identity, since)).fetchall()
            if rows:
                conn.execute(f"UPDATE {self._d} AS d SET handed_out = handed_out + 1 WHERE {where}",
                             (identity, since))
        return [replayed(mid, payload, identity, created, status, n)
                for mid, payload, created, status, n in rows]

    # ------------------------------------------------------------------ retention and inspection
    async def purge(self, *, now: float, max_age: float | None = None) -> int:
        """Delete messages created before ``now - max_age`` (default: ``retention``); return how many."""
        age = self.retention if max_age is None else check_seconds(max_age, "max_age")
        if age is None:
            raise ConfigError("purge needs max_age= or SqliteDurability(retention=...)", key="retention")
        cutoff = now - age
        conn = self._db()
        with sqlite_tx(conn, self.name):
            conn.execute(f"DELETE FROM {self._d} WHERE created_at < ?", (cutoff,))
            return conn.execute(f"DELETE FROM {self._m} WHERE created_at < ?", (cutoff,)).rowcount

    async def statuses(self, message_id: str) -> dict[str, str]:
        """Each target's current status for ``message_id`` (for tests and inspection)."""
        with sqlite_errors(self.name):
            rows = self._db().execute(f"SELECT identity, status FROM {self._d} WHERE message_id = ?",
                                      (message_id,)).fetchall()
        return dict(rows)

    async def messages(self) -> list[dict[str, Any]]:
        """Every stored message's id, filter, created_at and target count, oldest first."""
        with sqlite_errors(self.name):
            rows = self._db().execute(
                f"SELECT message_id, filter, created_at, targets FROM {self._m} "
                "ORDER BY created_at, message_id").fetchall()
        return [dict(zip(("message_id", "filter", "created_at", "targets"), r, strict=True)) for r in rows]


__all__ = ["SqliteDurability"]
