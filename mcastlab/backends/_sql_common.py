"""Helpers shared by the SQLite and PostgreSQL backends: names, rows, SQLite connections and errors."""

from __future__ import annotations

import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from mcastlab.backends._json import loads
from mcastlab.backends.base import DELIVERED, ERROR, TIMEOUT, Message
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    OperationTimeoutError,
    RegistryFullError,
    UnsupportedError,
)
from mcastlab.identity import Identity

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")

#: Delivery row status before the coordinator reported an outcome (it may be mid-fan-out, or dead).
PENDING = "pending"
#: Statuses after which the identity may already hold the message: replaying it is a redelivery.
MAYBE_DELIVERED = frozenset({PENDING, TIMEOUT, ERROR})

SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a safe SQL identifier (letters, digits, ``_``), else raise ConfigError."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ConfigError(
            f"{what} must be a plain SQL name (a letter or _, then letters, digits or _; at most 48), "
            f"got {value!r:.60}",
            key=what,
        )
    return value


def check_seconds(value: object, what: str) -> float | None:
    """``value`` as a float if it is None or a finite number of seconds > 0, else raise ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(f"{what} must be a finite number of seconds > 0 or None, got {value!r:.40}",
                          key=what)
    return float(value)


def quote(name: str) -> str:
    """Double-quote an already checked identifier."""
    return f'"{name}"'


def dump_metadata(metadata: Mapping[str, Any]) -> str:
    """Metadata as compact, ASCII-only JSON text (so lone surrogates cannot break the encoding)."""
    return json.dumps(dict(metadata), separators=(",", ":"), allow_nan=False)


def make_identity(identity_id: str, metadata: str, registered_at: float, expires_at: float | None
                  ) -> Identity:
    """Build an Identity (read-only metadata) from a stored row."""
    return Identity(identity_id, MappingProxyType(loads(metadata)), registered_at, expires_at)


def make_identities(rows: Sequence[Sequence[Any]], recheck: Any = None) -> list[Identity]:
    """Identities from ``(id, metadata JSON, registered_at, expires_at)`` rows; one JSON parse for all.

    ``recheck`` (a predicate) keeps only the rows it accepts: for SQL that only approximates a filter.
    """
    docs = loads("[" + ",".join(r[1] for r in rows) + "]") if rows else []
    found = [Identity(r[0], MappingProxyType(md), r[2], r[3]) for r, md in zip(rows, docs, strict=True)]
    return found if recheck is None else [i for i in found if recheck(i.metadata)]


def full_error(count: int, limit: int) -> RegistryFullError:
    """The RegistryFullError every SQL registry raises."""
    return RegistryFullError(
        f"registry is full: {count} live identities stored, max_identities={limit}; "
        "raise Config.max_identities or unregister some",
        limit=limit,
    )


def replayed(message_id: str, payload: bytes, identity: str, created_at: float, status: str,
             handed_out: int) -> Message:
    """A replayed Message; ``handed_out`` counts this hand-out too. Redelivery if it may have arrived."""
    return Message(message_id, bytes(payload), identity, created_at, attempt=handed_out + 1,
                   redelivery=handed_out > 1 or status in MAYBE_DELIVERED)


def split_statuses(statuses: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Identities and statuses as two parallel lists (for one batched UPDATE)."""
    return list(statuses.keys()), [str(s) for s in statuses.values()]


# --------------------------------------------------------------------------- SQLite

SQLITE_BUSY_MS = 10_000


def sqlite_connect(path: str, *, synchronous: str, name: str) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (transactions are explicit) with WAL for files."""
    with sqlite_errors(name):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=SQLITE_BUSY_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        if path != ":memory:" and not path.startswith("file::memory:"):
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


@contextmanager
def sqlite_errors(backend: str) -> Iterator[None]:
    """Translate sqlite3 errors into mcastlab BackendErrors."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise OperationTimeoutError(f"{backend}: database stayed locked: {text}",
                                        backend=backend) from exc
        if "unable to open" in text or "disk I/O" in text:
            raise BackendUnavailableError(f"{backend}: {text}", backend=backend) from exc
        raise BackendError(f"{backend}: {text}", backend=backend) from exc
    except sqlite3.ProgrammingError as exc:
        if "closed" in str(exc):
            raise BackendUnavailableError(f"{backend}: connection is closed (open() it first)",
                                          backend=backend) from exc
        raise BackendError(f"{backend}: {exc}", backend=backend) from exc
    except sqlite3.Error as exc:
        raise BackendError(f"{backend}: {exc}", backend=backend) from exc
    except UnicodeEncodeError as exc:
        raise UnsupportedError(f"{backend}: text with lone surrogates cannot be stored or compared: {exc}") \
            from exc


@contextmanager
def sqlite_tx(conn: sqlite3.Connection, backend: str) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (take the write lock now) ... COMMIT, or ROLLBACK on any error."""
    with sqlite_errors(backend):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


__all__ = [
    "DELIVERED",
    "MAYBE_DELIVERED",
    "PENDING",
    "SQLITE_RETURNING",
    "check_name",
    "check_seconds",
    "dump_metadata",
    "full_error",
    "make_identities",
    "make_identity",
    "quote",
    "replayed",
    "sqlite_connect",
    "sqlite_errors",
    "sqlite_tx",
]


class SqliteStore(ABC):
    """A reference-counted sqlite3 connection that creates its schema on first open.

    Shared by the SQLite registry and durability slot: several coordinators may open one object, the
    last close closes it, and a ``:memory:`` database keeps its data across close/reopen.
    """

    path: str
    name: str
    _synchronous = "NORMAL"
    _conn: sqlite3.Connection | None = None
    _opens = 0

    @abstractmethod
    def _schema(self) -> str: ...

    async def open(self, runtime: Any = None) -> None:
        """Connect and create the schema on first open (reference counted; needs no runtime)."""
        if self._conn is None:
            conn = sqlite_connect(self.path, synchronous=self._synchronous, name=self.name)
            with sqlite_errors(self.name):
                conn.executescript(self._schema())
            self._conn = conn
        self._opens += 1

    async def close(self) -> None:
        """Close the connection when the last opener closes (``:memory:`` stays, like its data)."""
        self._opens = max(0, self._opens - 1)
        if self._opens == 0 and self._conn is not None and self.path != ":memory:":
            self._conn.close()
            self._conn = None
