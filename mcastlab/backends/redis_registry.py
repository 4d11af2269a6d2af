"""RedisRegistry: the registry slot on Redis (redis.asyncio + hiredis), Redis being the source of truth.

Theory of operation
-------------------
**Key layout.** Every key of one registry starts with ``base = <prefix>{<tag>}:``, where ``tag`` is the
prefix without trailing ``:`` (``mcast:{mcast}:`` for the default ``prefix="mcast:"``). The braces are a
Redis Cluster hash tag: all keys of one registry hash to one slot, so the Lua scripts below may touch
several of them atomically (and a cluster spreads *registries*, not identities, across nodes)::

    base + "z"                      ZSET  member = encoded identity, score = deadline (+inf: never expires)
    base + "id:" + enc(identity)    HASH  m = metadata JSON, r = registered_at, e = expires_at ("" = never),
                                          x = this identity's index key suffixes, newline separated
    base + "xs"                     HASH  enc(identity) -> x (no safety TTL: cleanup after the hash expired)
    base + "rows"                   HASH  enc(identity) -> its row "<enc(identity)> <e> <r> <m>"
    base + "ix:" + enc(field) + ":" + enc(token)
                                    SET   encoded identities whose top-level ``field`` has index token
                                          ``token`` (e.g. ``s:online``, ``n:5``), as mcastlab.filters plans
    base + "rix:" + ...             HASH  the same identities -> their rows (the index set's row hash)
    base + "tmp:" + random[":" + n] SET   throwaway result of a multi-part plan (one-minute expiry, deleted
                                          by the query that made it)
    base + "lapsed"                 LIST  "<deadline> <member>" of lifetimes that lapsed unswept and were
                                          replaced by a new register: claimed first
    base + "claims"                 HASH  claimer -> "<seq> <claimed at>" of its unacknowledged batch
    base + "claim:" + claimer       LIST  that batch (member, deadline, ...); see ``_redis_claims``

``enc`` (see ``_subjects.encode_token``) keeps ``[A-Za-z0-9_-]`` and %-escapes every other UTF-8 byte,
so a name containing ``:``, ``{``, ``}``, glob characters or non-ASCII can neither collide with another
name nor escape its key. Suffixes longer than 200 characters are replaced by a digest (an index is only
a candidate superset, so a collision could never change a result).

**Atomicity.** Register (``upsert``), heartbeat (``touch``), unregister (``remove``) and the expiry claim
are each one Lua script (``_redis_scripts``), which Redis runs without interleaving: the hash, its
deadline entry and its index entries change together or not at all. ``x`` records which index sets an
identity was added to, so re-registering with new metadata and removing it delete exactly those entries.
The ``max_identities`` check (live identities = ``ZCOUNT z (now +inf``) runs in the same script as the
insert, so concurrent registers can never overshoot the limit.

**Expiry, claimed exactly once.** Deadlines live in the sorted set ``z``. ``claim_expired`` runs one script
that reads members with score <= now (``ZRANGEBYSCORE ... LIMIT``) and, in the same script, ``ZREM``s them
and deletes their hash and index entries. Scripts are serialised by Redis, so however many coordinators
sweep concurrently, each expired identity is returned to exactly one of them, which counts it. The batch
stays recorded until its claimer acknowledges it, so a reply lost in transit is handed out again by the next
claim rather than lost (``_redis_claims``). A register that replaces a lapsed, unswept lifetime records it
in ``lapsed``, and claims return those first. Keyspace notifications are not used (late and lost while
disconnected). Reads never need the sweeper: every read checks ``e`` against the caller's ``now``. As a
safety net only, each identity hash gets a Redis TTL of its deadline plus ``key_grace`` (relative to the
caller's ``now``, so it also holds for non-wall clocks); if it ever fires before a sweep, the claim still
counts the identity, and any index entries it leaves are harmless because query candidates are always
re-checked against stored metadata.

**Queries.** What an enumerate reads of an identity is its row (``member e r m``, see ``_redis_scripts``),
kept in the ``rows`` hash and in each index set's row hash, so a read is one ``HVALS``: Redis walks one hash
rather than looking every member's key up (0.20 µs of Redis CPU a row against 0.83-1.08 for ``SORT ... GET``
of one key per identity, 4,000 rows among 60,000 other keys). Without a usable index plan the read is
``HVALS rows`` (every stored identity); a plan that is one ``Term`` reads its index set's row hash; each is
sent with the size of its set (``ZCARD`` / ``SCARD``) in one ``MULTI``/``EXEC`` with the lapsed members, and
a row hash of another size (rows stored by a version without row hashes) makes that query read the identity
hashes instead (the ``fetch`` script). Otherwise the filter's plan (``Term`` / ``AllOf`` / ``AnyOf``)
becomes a postfix program that the ``plan`` script evaluates with ``SINTERSTORE`` / ``SUNIONSTORE`` into a
throwaway key (random name, one-minute expiry), whose members' rows the ``rows`` script reads (``HMGET``)
before the key is deleted — three commands sent back to back on one connection. Expired rows (``e <= now``)
are dropped and the full predicate is checked client-side on the candidates. Every key of a registry shares
its hash tag, so all of this also runs on one node of a Redis Cluster.

**Throughput.** All commands go through an auto-pipeline (``_redis_pipe.AutoPipeline``): concurrent calls
share pipelines on a few dedicated connections instead of paying one round trip each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from mcastlab.backends._json import RowsView, dumps, live_offsets, loads, unpack_row
from mcastlab.backends._redis_claims import DEFAULT_STALE, ClaimLedger
from mcastlab.backends._redis_keys import ids_program, index_suffix, index_suffixes, plan_program, ttl_ms
from mcastlab.backends._redis_pipe import AutoPipeline, make_pool, translate
from mcastlab.backends._redis_scripts import SCRIPTS
from mcastlab.backends._subjects import check_key_prefix, decode_token, decode_tokens, encode_token
from mcastlab.backends.base import Capabilities, ExpiredIdentity
from mcastlab.errors import BackendError, ClosedError, ConfigError, McastlabError, RegistryFullError
from mcastlab.identity import Identity

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter

log = logging.getLogger("mcastlab.backends.redis_registry")

class RedisRegistry:
    """Registry on Redis; see the module docstring. Several coordinators may share one object
    (``open``/``close`` are reference counted) or use their own objects on the same URL and prefix."""

    name = "redis"
    capabilities = Capabilities(stored_count=True)

    def __init__(self, url: str, *, prefix: str = "mcast:",
                 username: str | None = None, password: str | None = None, db: int | None = None,
                 tls: bool | None = None, tls_ca_certs: str | None = None, tls_certfile: str | None = None,
                 tls_keyfile: str | None = None, tls_verify: bool = True, socket_timeout: float = 5.0,
                 connect_timeout: float = 2.0, lanes: int = 2, max_batch: int = 1024,
                 key_grace: float | None = 3600.0, claim_stale: float = DEFAULT_STALE) -> None:
        check_key_prefix(prefix)
        if key_grace is not None and not (isinstance(key_grace, int | float) and key_grace > 0):
            raise ConfigError(f"key_grace must be seconds > 0 or None, got {key_grace!r}", key="key_grace")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ConfigError(f"lanes must be an int >= 1, got {lanes!r}", key="lanes")
        self.url = url
        self.prefix = prefix
        self.base = f"{prefix}{{{prefix.rstrip(':') or 'mcast'}}}:"
        self._zkey = self.base + "z"
        self._rowkey = self.base + "rows"  # every identity's row (see "Queries")
        self._grace = key_grace
        self._claims = ClaimLedger(claim_stale)
        self._pool_kw: dict[str, Any] = {
            "username": username, "password": password, "db": db, "tls": tls, "tls_ca_certs": tls_ca_certs,
            "tls_certfile": tls_certfile, "tls_keyfile": tls_keyfile, "tls_verify": tls_verify,
            "socket_timeout": socket_timeout, "connect_timeout": connect_timeout,
            "max_connections": lanes + 8,
        }
        make_pool(url, **self._pool_kw)  # validate the URL and options now, not on first use
        self._lanes, self._max_batch, self._timeout = lanes, max_batch, socket_timeout
        self._pool: Any = None
        self._pipe: AutoPipeline | None = None
        self._opens = 0

    def __repr__(self) -> str:
        return f"RedisRegistry({self.url!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Any = None) -> None:
        """Connect (first open) and load the scripts; raises BackendUnavailableError if Redis is down."""
        self._opens += 1
        if self._opens > 1:
            return
        self._pool = make_pool(self.url, **self._pool_kw)
        self._pipe = AutoPipeline(self._pool, backend=self.name, lanes=self._lanes, max_batch=self._max_batch,
                                  timeout=self._timeout)
        self._pipe.start()
        try:
            await self._load_scripts()
        except BaseException as exc:
            self._opens = 1
            await self._shutdown()
            raise translate(exc, self.name, f"cannot open {self!r}") from None

    async def _load_scripts(self) -> None:
        pipe = self._p()
        for _sha, body in SCRIPTS.values():
            await pipe.call("SCRIPT", "LOAD", body)

    async def close(self) -> None:
        """Release one open; the last one disconnects."""
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens == 0:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._opens = 0
        pipe, pool = self._pipe, self._pool
        self._pipe = self._pool = None
        if pipe is not None:
            await pipe.close()
        if pool is not None:
            await pool.disconnect()

    def lane_busy(self) -> tuple[float, int]:
        """Lane-seconds the auto-pipeline has spent on batches so far (sending them and reading their
        replies), and its lanes: a resource of live runs, reported beside the processes' CPU."""
        pipe = self._pipe
        return (0.0 if pipe is None else pipe.busy_s), self._lanes

    def _p(self) -> AutoPipeline:
        pipe = self._pipe
        if pipe is None:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        return pipe

    async def _script(self, name: str, nkeys: int, *args: Any) -> Any:
        sha, body = SCRIPTS[name]
        try:
            return await self._p().script(sha, body, nkeys, *args)
        except McastlabError:
            raise
        except Exception as exc:
            raise translate(exc, self.name, name) from None

    # ------------------------------------------------------------------ helpers
    def _key(self, member: str) -> str:
        return f"{self.base}id:{member}"

    # ------------------------------------------------------------------ writes
    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        """Insert or replace atomically; RegistryFullError (nothing changed) if new and full."""
        member = encode_token(identity.id)
        exp = identity.expires_at
        res = await self._script(
            "upsert", 2, self._key(member), self._zkey, member, dumps(dict(identity.metadata)),
            repr(identity.registered_at), "" if exp is None else repr(exp),
            "+inf" if exp is None else repr(exp),
            repr(now), -1 if max_identities is None else max_identities, index_suffixes(identity.metadata),
            ttl_ms(exp, now, self._grace), self.base)
        if res[0] < 0:
            raise RegistryFullError(
                f"registry is full: {res[1]} live identities stored, max_identities={max_identities}; "
                "raise Config.max_identities or unregister some",
                limit=max_identities or 0)
        return bool(res[0])

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        """Move a live identity's deadline; None if absent or expired."""
        member = encode_token(identity_id)
        res = await self._script(
            "touch", 2, self._key(member), self._zkey, member, "" if expires_at is None else repr(expires_at),
            "+inf" if expires_at is None else repr(expires_at), repr(now),
            ttl_ms(expires_at, now, self._grace), self.base)
        if res is None:
            return None
        return Identity(identity_id, MappingProxyType(loads(res[0])), float(res[1]), expires_at)

    async def remove(self, identity_id: str) -> bool:
        """Delete the identity and its index entries; True if it was stored. Idempotent."""
        member = encode_token(identity_id)
        return bool(await self._script("remove", 2, self._key(member), self._zkey, member, self.base))

    # ------------------------------------------------------------------ reads
    async def _call(self, what: str, *args: Any) -> Any:
        try:
            return await self._p().call(*args)
        except McastlabError:
            raise
        except Exception as exc:
            raise translate(exc, self.name, what) from None

    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        """The live identity, or None."""
        m, r, e = await self._call("get", "HMGET", self._key(encode_token(identity_id)), "m", "r", "e")
        if m is None:
            return None
        exp = float(e) if e else None
        if exp is not None and exp <= now:
            return None
        return Identity(identity_id, MappingProxyType(loads(m)), float(r), exp)

    async def _fetch(self, prog: list[str] | None, now: float,
                     fields: bool = False) -> tuple[Any, list[bytes], bool]:
        """The candidates' rows (packed rows, or None when a row hash disagrees with its set; with
        ``fields``: member, m, r, e, ... read from the hashes — the third value says which) and the members
        whose deadline is at or before ``now`` (lapsed, waiting for the sweeper: usually none), read just
        before them on the same connection: a row lapsed by ``now`` was lapsed then too (deadlines only
        move later), so it is in that list."""
        pipe = self._p()
        lapsed = ("ZRANGEBYSCORE", self._zkey, "-inf", repr(now))
        for _ in range(3):
            try:
                if prog and len(prog) != 2:  # set algebra into a throwaway key, read it, drop it
                    dest = f"{self.base}tmp:{secrets.token_hex(8)}"
                    reader = "fetch" if fields else "rows"
                    dead, _, rows, _ = await pipe.call_many(
                        lapsed, ("EVALSHA", SCRIPTS["plan"][0], 1, dest, self.base, *prog),
                        ("EVALSHA", SCRIPTS[reader][0], 1, dest, self.base), ("DEL", dest))
                    return rows, dead, not fields
                # every stored identity, or one index set: its row hash, its size checked against the set's
                size, key, rowkey = (("ZCARD", self._zkey, self._rowkey) if not prog else
                                     ("SCARD", self.base + prog[1], f"{self.base}r{prog[1]}"))
                if fields:
                    fetch = ("EVALSHA", SCRIPTS["fetch"][0], 1, key, self.base)
                    dead, rows = await pipe.call_many(lapsed, fetch)
                    return rows, dead, False
                # in one transaction: no write lands between the lapsed members, the size and the rows
                *_, (dead, n, rows) = await pipe.call_many(
                    ("MULTI",), lapsed, (size, key), ("HVALS", rowkey), ("EXEC",))
                return (rows if len(rows) == n else None), dead, True
            except NoScriptError:  # the server restarted or flushed its scripts
                await self._load_scripts()
        raise BackendError("query failed: Redis kept forgetting the scripts", backend=self.name)

    async def _rows(self, flt: CompiledFilter, now: float) -> Sequence[Identity]:
        prog = None if flt.matches_all or flt.plan is None else plan_program(flt.plan)
        try:
            rows, lapsed, packed = await self._fetch(prog, now)
            if packed and (rows is None or None in rows):  # rows missing (stored by a version without
                rows, lapsed, packed = await self._fetch(prog, now, fields=True)  # them): read the hashes
        except McastlabError:
            raise
        except Exception as exc:
            raise translate(exc, self.name, "query") from None
        # an exact plan's candidates all match: no predicate to run (only deadlines to check), and the
        # identities are made when the caller reads them
        pred = None if flt.matches_all or (flt.exact and prog) else flt.predicate
        if pred is None:
            return RowsView(rows, live_offsets(rows, now, lapsed, packed), packed)
        out: list[Identity] = []
        append = out.append
        for i in range(0, len(rows), 1 if packed else 4):
            if packed:
                t, m, r, e = unpack_row(rows[i])
            else:
                t, m, r, e = rows[i], rows[i + 1], rows[i + 2], rows[i + 3]
                if m is None:
                    continue  # a deadline or index entry whose hash is gone (see "safety net")
            if e:
                exp: float | None = float(e)
                if exp <= now:  # type: ignore[operator]
                    continue
            else:
                exp = None
            md = loads(m)
            if not pred(md):
                continue
            tok = t.decode()
            append(Identity(tok if "%" not in tok else decode_token(tok), MappingProxyType(md), float(r),
                            exp))
        return out

    async def query(self, flt: CompiledFilter, *, now: float) -> Sequence[Identity]:
        """Live identities matching ``flt``: index sets narrow server-side, the predicate decides (an exact
        plan's matches come as a :class:`RowsView`, built when read)."""
        return await self._rows(flt, now)

    async def _live_ids(self, flt: CompiledFilter, now: float) -> list[bytes] | None:
        """Encoded ids of the live matches, read from index sets and deadlines only (no identity hash),
        or None when the filter's plan is not exact (its candidates must be read and tested)."""
        prog = ids_program(flt)
        if prog is None:
            return None
        if len(prog) == 2:  # one index set: its members minus the lapsed, as the ids script would, but
            try:  # read natively (a script's reply is built from a Lua table: ~0.2 µs more per id)
                dead, ids = await self._p().call_many(("ZRANGEBYSCORE", self._zkey, "-inf", repr(now)),
                                                      ("SMEMBERS", self.base + prog[1]))
            except McastlabError:
                raise
            except Exception as exc:
                raise translate(exc, self.name, "query") from None
            if dead:
                gone = set(dead)
                return [m for m in ids if m not in gone]
            return list(ids)
        if not prog:  # every identity: the live part of the deadline set
            return list(await self._call("query", "ZRANGEBYSCORE", self._zkey, f"({now!r}", "+inf"))
        tmp = f"{self.base}tmp:{secrets.token_hex(8)}"
        return list(await self._script("ids", 2, self._zkey, tmp, repr(now), self.base, *prog))

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        """The ids of the live identities matching ``flt``: an exact plan is answered by one script over
        the index sets and deadlines; otherwise candidates are read and tested (ids only are built)."""
        got = await self._live_ids(flt, now)
        if got is None:
            return [i.id for i in await self._rows(flt, now)]
        return decode_tokens(got)

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        """How many live identities match ``flt``."""
        if flt.matches_all:
            return int(await self._call("count", "ZCOUNT", self._zkey, f"({now!r}", "+inf"))
        got = await self._live_ids(flt, now)
        return len(await self._rows(flt, now)) if got is None else len(got)

    # ------------------------------------------------------------------ expiry
    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        """Remove and return up to ``limit`` expired identities (lapsed lifetimes first), each to exactly
        one caller, in a batch this claimer acknowledges (``_redis_claims``: a lost reply comes again)."""
        ledger = self._claims
        async with ledger.lock():
            got = await self._script("claim", 1, self._zkey, repr(now), int(limit), self.base,
                                     *ledger.args())
            seq, _removed, items = ledger.received(got)
            if items:
                try:
                    await self._script("claim_ack", 1, self.base + "claims", ledger.claimer, seq, self.base)
                except Exception:  # the next claim acknowledges it too
                    log.debug("claim_ack failed; the next claim acknowledges batch %s", seq, exc_info=True)
        return items

    async def next_deadline(self) -> float | None:
        """The earliest stored deadline (possibly already past; a lapsed lifetime's first), or None."""
        got, lapsed = await asyncio.gather(
            self._call("next_deadline", "ZRANGE", self._zkey, 0, 0, "WITHSCORES"),
            self._call("next_deadline", "LINDEX", self.base + "lapsed", 0))
        due = [float(got[1])] if got else []
        if lapsed is not None:
            due.append(float(lapsed.split(b" ", 1)[0]))
        return min(due) if due and not math.isinf(min(due)) else None

    async def identities(self) -> int:
        """How many identities are stored (live or expired but not yet swept)."""
        return int(await self._call("identities", "ZCARD", self._zkey))


__all__ = ["RedisRegistry", "index_suffix", "plan_program"]
