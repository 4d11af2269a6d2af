"""asyncpg plumbing shared by the PostgreSQL backends: a reference-counted pool and error translation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import asyncpg

from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    OperationTimeoutError,
    UnsupportedError,
)

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,  # e.g. "connection is closed"
    asyncpg.exceptions.InternalClientError,  # e.g. a protocol left mid-operation by a lost server
)

log = logging.getLogger("mcastlab.backends.postgres")


def translate(exc: BaseException, backend: str) -> BaseException | None:
    """The mcastlab error for an asyncpg/OS error, or None to let it through."""
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError | asyncio.TimeoutError):
        return OperationTimeoutError(f"{backend}: query timed out: {exc}", backend=backend)
    if isinstance(exc, asyncpg.UntranslatableCharacterError | asyncpg.CharacterNotInRepertoireError):
        return UnsupportedError(
            f"{backend}: PostgreSQL cannot store or compare text holding the NUL character (U+0000), "
            f"in metadata or in filter values; remove it: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return BackendUnavailableError(f"{backend}: PostgreSQL is unreachable: {exc}", backend=backend)
    if isinstance(exc, asyncpg.PostgresError):
        return BackendError(f"{backend}: {type(exc).__name__}: {exc}", backend=backend)
    return None


@contextmanager
def translating(backend: str) -> Iterator[None]:
    """Re-raise asyncpg/OS errors as mcastlab errors (others pass through)."""
    try:
        yield
    except BaseException as exc:
        mapped = translate(exc, backend)
        if mapped is None:
            raise
        raise mapped from exc


class PgPool:
    """One asyncpg pool opened by the first ``open`` and closed by the last ``close``."""

    def __init__(self, dsn: str, *, pool_size: int, timeout: float, backend: str,
                 server_settings: Mapping[str, str] | None = None) -> None:
        if not isinstance(dsn, str) or not dsn.startswith(("postgres://", "postgresql://")):
            raise ConfigError(f"{backend}: dsn must be a postgresql:// URL, got {dsn!r:.80}", key="dsn")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"{backend}: pool_size must be an int >= 1, got {pool_size!r}", key="pool_size")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"{backend}: timeout must be a number of seconds > 0, got {timeout!r}",
                              key="timeout")
        self.dsn, self.pool_size, self.timeout, self.backend = dsn, pool_size, float(timeout), backend
        self.server_settings = dict(server_settings or {})
        self._pool: asyncpg.Pool | None = None
        self._opens = 0

    async def open(self, schema: str) -> None:
        """Create the pool and run ``schema`` (idempotent DDL) on first open."""
        if self._pool is None:
            with translating(self.backend):
                pool = await asyncio.wait_for(
                    asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size,
                                        command_timeout=self.timeout,
                                        server_settings=self.server_settings or None),
                    self.timeout)
            self._pool = pool
            try:
                async with self.conn() as conn, conn.transaction():
                    # Serialise concurrent schema creation by several processes.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema[:200])
                    await conn.execute(schema)
            except BaseException:
                self._pool = None
                pool.terminate()
                raise
        self._opens += 1

    async def close(self) -> None:
        """Close the pool when the last opener closes."""
        self._opens = max(0, self._opens - 1)
        if self._opens == 0 and self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except BaseException:
                log.warning("PostgreSQL pool did not close cleanly; terminated it", exc_info=True)
                pool.terminate()

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[Any]:
        """A pooled connection; asyncpg/OS errors come out as mcastlab errors.

        A connection that failed with a connection-level error is terminated rather than returned to
        the pool, so the pool reconnects instead of handing out a broken connection again.
        """
        pool = self._pool
        if pool is None:
            raise ClosedError(f"{self.backend} is not open; pass it to a Coordinator or await open()")
        with translating(self.backend):
            conn = await pool.acquire(timeout=self.timeout)
        broken = False
        try:
            with translating(self.backend):
                yield conn
        except BaseException as exc:
            broken = isinstance(exc, BackendUnavailableError | OperationTimeoutError | asyncio.CancelledError)
            raise
        finally:
            if broken:  # possibly mid-operation: never hand it out again (the pool reconnects)
                with suppress(asyncpg.InterfaceError):  # already detached when the server dropped it
                    conn.terminate()
            with suppress(asyncpg.InterfaceError):
                await pool.release(conn)


__all__ = ["PgPool", "translate", "translating"]
