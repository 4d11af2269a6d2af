"""RedisClusterRegistry: one registry spread over a Redis Cluster, identities sharded by a stable hash.

Theory of operation
-------------------
**Layout.** The registry is split into ``shards`` virtual shards (default 16). Shard ``k`` keeps exactly
the layout of :class:`~mcastlab.backends.RedisRegistry` (identity hashes, index sets, deadline zset; see
that module) under its own base ``<prefix>{<tag>:<k>}:`` — a Redis Cluster hash tag, so all of one shard's
keys live in one slot and the same Lua scripts (``_redis_scripts``, which take the base as an argument)
run on it atomically. Different shards hash to different slots, hence spread over the masters. An identity
lives in shard ``zlib.crc32(enc(identity)) % shards``, where ``enc`` is the key encoding of
``_subjects.encode_token`` (ASCII) and CRC-32 is zlib's (IEEE 802.3): the same in every process and
language, unlike Python's salted ``hash()``. The shard count is recorded in ``<prefix>{<tag>:meta}``
(field ``shards``) by the first registry to open, and a registry opened with another count is refused.

**Writes** (register, heartbeat, unregister) are one script on one shard, as in RedisRegistry. **Expiry
claims** run the claim script per shard (each member claimed exactly once, however many coordinators): a
sweep asks every shard for an equal part of its batch, then the shards that filled theirs for the rest.

**Reads** (enumerate, count, multicast targets, next deadline, stored count) run one script or command per
shard; the commands of all shards on one master go out in one pipeline (one round trip per node) and the
results are merged. Rows are read with the ``fetch`` script (Redis 7 Cluster refuses ``SORT ... GET``);
an exact plan (``CompiledFilter.exact``) is answered by the ``ids`` script from index sets and deadlines.

**max_identities** cannot be checked inside one shard's script, so the registry keeps a stored-identity
counter (``<prefix>{<tag>:meta}`` field ``stored``): a register first tries to *replace* an identity
already stored (``upsert`` with max ``-2``: no admission needed); a new one takes a place with the
``admit`` script (refused at the limit: RegistryFullError, nothing stored) and is then inserted; every
created / removed / claimed hash moves the counter. It counts *stored* identities (expired but not yet
swept ones too, as the simulated registry does); a full registry makes the coordinator sweep and retry.
The counter is kept in step by separate commands, so a crash between a write and its counter update, or a
failover losing either, leaves it off by the writes concerned; :meth:`resync` sets it to the true count
(sum of the shards' deadline sets) and runs after a failover of the counter's master.

**Failures.** Routing, redirects, retries and typed errors: ``_redis_cluster``; lost acknowledged writes
are counted by ``_redis_cluster_watch`` (``lost_writes``, ``lost``, :meth:`check_replication`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mcastlab.backends._json import RowsView, live_offsets
from mcastlab.backends._redis_claims import DEFAULT_STALE, ClaimLedger, claim_shards
from mcastlab.backends._redis_cluster import Addr, ClusterClient
from mcastlab.backends._redis_cluster_keys import (
    BODIES,
    SHA,
    Layout,
    check_number,
    shard_of,
    write_lost,
)
from mcastlab.backends._redis_cluster_watch import Entry, ReplicationWatch
from mcastlab.backends._redis_keys import ids_program, index_suffixes, plan_program, ttl_ms
from mcastlab.backends._redis_pipe import make_pool
from mcastlab.backends._subjects import check_key_prefix, decode_token, decode_tokens
from mcastlab.backends.base import Capabilities, ExpiredIdentity
from mcastlab.errors import ClosedError, ConfigError, RegistryFullError
from mcastlab.identity import Identity

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter
    from mcastlab.runtime.base import Runtime

_OPS = {"u": "register", "t": "heartbeat", "d": "unregister"}
_decoder = json.JSONDecoder()


class RedisClusterRegistry:
    """Registry on a Redis Cluster; see the module docstring. ``open``/``close`` are reference counted.

    ``nodes``: one or more node URLs (``redis://host:port``; the others are discovered). ``shards``: the
    virtual shard count, the same for every process on this prefix. ``retry_budget`` / ``max_attempts``
    bound the retries of one call through redirects and failovers; ``confirm_interval`` paces the
    replication watch.
    """

    name = "redis-cluster"
    capabilities = Capabilities(stored_count=True)

    def __init__(self, nodes: str | Sequence[str], *, prefix: str = "mcast:", shards: int = 16,
                 username: str | None = None, password: str | None = None, tls: bool | None = None,
                 tls_ca_certs: str | None = None, tls_certfile: str | None = None,
                 tls_keyfile: str | None = None, tls_verify: bool = True, socket_timeout: float = 5.0,
                 connect_timeout: float = 2.0, lanes: int = 2, max_batch: int = 1024,
                 key_grace: float | None = 3600.0, retry_budget: float = 1.0, max_attempts: int = 6,
                 confirm_interval: float = 0.25, claim_stale: float = DEFAULT_STALE) -> None:
        check_key_prefix(prefix)
        self.keys = Layout(prefix, shards)
        for key, value, integer, minimum in (("lanes", lanes, True, 1), ("max_batch", max_batch, True, 1),
                                             ("max_attempts", max_attempts, True, 1),
                                             ("retry_budget", retry_budget, False, 0),
                                             ("socket_timeout", socket_timeout, False, 0.001),
                                             ("connect_timeout", connect_timeout, False, 0.001),
                                             ("confirm_interval", confirm_interval, False, 0.01)):
            check_number(key, value, minimum=minimum, integer=integer)
        if key_grace is not None:
            check_number("key_grace", key_grace, minimum=1e-9, fix=" (or None for no safety-net TTL)")
        pool_kw: dict[str, Any] = {
            "username": username, "password": password, "tls": tls, "tls_ca_certs": tls_ca_certs,
            "tls_certfile": tls_certfile, "tls_keyfile": tls_keyfile, "tls_verify": tls_verify,
            "socket_timeout": socket_timeout, "connect_timeout": connect_timeout,
            "max_connections": lanes + 8,
        }
        self._client = ClusterClient(nodes, backend=self.name, pool_kw=pool_kw, lanes=lanes,
                                     max_batch=max_batch, timeout=socket_timeout, scripts=BODIES,
                                     retry_budget=float(retry_budget), max_attempts=max_attempts)
        self.nodes = [f"{self._client.scheme}://{h}:{p}" for h, p in self._client.seeds]
        make_pool(self.nodes[0], **pool_kw)  # validate the connection options now, not on first use
        self.prefix, self.shards = prefix, shards
        self._grace = key_grace
        self._runtime: Runtime | None = None
        self._watch = ReplicationWatch(self._client, self._verify, interval=confirm_interval)
        self._meta_suspect = False
        self._claim_from = 0
        self._claims = ClaimLedger(claim_stale)
        self._opens = 0

    def __repr__(self) -> str:
        return f"RedisClusterRegistry({self.nodes!r}, prefix={self.prefix!r}, shards={self.shards})"

    @staticmethod
    def shard_of(identity: str, shards: int) -> int:
        """The shard of ``identity`` among ``shards``: CRC-32 (zlib) of its encoded name, modulo shards."""
        return shard_of(identity, shards)

    @property
    def lost_writes(self) -> int:
        """Acknowledged writes found missing after a failover (see ``_redis_cluster_watch``)."""
        return self._watch.lost_writes

    @property
    def lost(self) -> list[tuple[str, str]]:
        """The latest lost writes as ``(op, identity)``, op ``register`` / ``heartbeat`` / ``unregister``."""
        return [(_OPS[op], decode_token(member)) for op, member in self._watch.lost]

    @property
    def client(self) -> ClusterClient:
        """The slot router (its ``retries`` / ``redirects`` / ``refreshes`` count what failovers cost)."""
        return self._client

    # ------------------------------------------------------------------ lifecycle
    async def open(self, runtime: Runtime | None = None) -> None:
        """Read the slot map, load the scripts and check the shard count; BackendUnavailableError if no
        node answers, ConfigError if the registry on this prefix has another shard count."""
        self._opens += 1
        if self._opens > 1:
            return
        self._runtime = runtime
        keys, client = self.keys, self._client
        try:
            await client.open()
            for addr in client.masters:
                await client.pipe(addr).call_many(*(("SCRIPT", "LOAD", body) for body in BODIES))
            _, got = await client.call_many(keys.meta_slot, ("HSETNX", keys.meta, "shards", self.shards),
                                            ("HGET", keys.meta, "shards"))
            if int(got) != self.shards:
                raise ConfigError(f"the registry under prefix {self.prefix!r} has {int(got)} shards, not "
                                  f"{self.shards}: use shards={int(got)} (or another prefix)", key="shards")
        except BaseException:
            self._opens = 0
            await client.close()
            raise
        client.on_suspect.append(self._suspect_meta)
        self._watch.start()

    async def close(self) -> None:
        """Release one open; the last one stops the watch and disconnects."""
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens == 0:
            await self._watch.stop()
            if self._suspect_meta in self._client.on_suspect:
                self._client.on_suspect.remove(self._suspect_meta)
            await self._client.close()

    def _live(self) -> ClusterClient:
        if self._opens == 0:
            raise ClosedError(f"{self!r} is not open; use it through 'async with Coordinator(...)'")
        return self._client

    def _suspect_meta(self, addr: Addr) -> None:
        if self._client._slots[self.keys.meta_slot] == addr:
            self._meta_suspect = True

    def _now(self) -> float:
        return self._runtime.now() if self._runtime is not None else time.time()

    # ------------------------------------------------------------------ writes
    async def _counter(self, delta: int) -> None:
        if delta:
            keys = self.keys
            await self._live().call(keys.meta_slot, "HINCRBY", keys.meta, "stored", delta, idempotent=False)

    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        """Insert or replace atomically on the identity's shard; RegistryFullError (nothing changed) if the
        identity is new and the stored-identity counter is at ``max_identities``."""
        client, keys = self._live(), self.keys
        member, k, slot, key = keys.locate(identity.id)
        base, exp = keys.bases[k], identity.expires_at
        suffixes = index_suffixes(identity.metadata)
        score = "+inf" if exp is None else repr(exp)
        args = [key, keys.zkeys[k], member, json.dumps(dict(identity.metadata)), repr(identity.registered_at),
                "" if exp is None else repr(exp), score, repr(now), "-1" if max_identities is None else "-2",
                suffixes, ttl_ms(exp, now, self._grace), base]
        res = await client.call(slot, "EVALSHA", SHA["upsert"], 2, *args)
        if res[0] == -2:  # not stored yet: take a place first
            ok, stored = await client.call(keys.meta_slot, "EVALSHA", SHA["admit"], 1, keys.meta,
                                           max_identities, idempotent=False)
            if not ok:
                raise RegistryFullError(
                    f"registry is full: {stored} identities stored, max_identities={max_identities}; raise "
                    "Config.max_identities or unregister some", limit=max_identities or 0)
            args[8] = "-1"
            res = await client.call(slot, "EVALSHA", SHA["upsert"], 2, *args)
            if not res[1]:
                await self._counter(-1)  # another register stored it meanwhile: give the place back
        elif res[1]:
            await self._counter(1)
        self._watch.note(slot, ("u", k, member, identity.registered_at, exp))
        return bool(res[0])

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        """Move a live identity's deadline; None if absent or expired."""
        member, k, slot, key = self.keys.locate(identity_id)
        score = "+inf" if expires_at is None else repr(expires_at)
        res = await self._live().call(slot, "EVALSHA", SHA["touch"], 2, key, self.keys.zkeys[k], member,
                                      "" if expires_at is None else repr(expires_at), score, repr(now),
                                      ttl_ms(expires_at, now, self._grace), self.keys.bases[k])
        if res is None:
            return None
        self._watch.note(slot, ("t", k, member, expires_at, None))
        return Identity(identity_id, MappingProxyType(json.loads(res[0])), float(res[1]), expires_at)

    async def remove(self, identity_id: str) -> bool:
        """Delete the identity and its index entries; True if it was stored. Idempotent."""
        member, k, slot, key = self.keys.locate(identity_id)
        at = self._now()
        removed = bool(await self._live().call(slot, "EVALSHA", SHA["remove"], 2, key, self.keys.zkeys[k],
                                               member, self.keys.bases[k]))
        if removed:
            await self._counter(-1)
            self._watch.note(slot, ("d", k, member, at, None))
        return removed

    # ------------------------------------------------------------------ reads
    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        """The live identity, or None."""
        _, _, slot, key = self.keys.locate(identity_id)
        m, r, e = await self._live().call(slot, "HMGET", key, "m", "r", "e")
        if m is None:
            return None
        exp = float(e) if e else None
        if exp is not None and exp <= now:
            return None
        return Identity(identity_id, MappingProxyType(json.loads(m)), float(r), exp)

    async def query(self, flt: CompiledFilter, *, now: float) -> Sequence[Identity]:
        """Live identities matching ``flt``: every shard's candidates, one round trip per node (an exact
        plan's matches come as a RowsView, built when read)."""
        prog = None if flt.matches_all or flt.plan is None else plan_program(flt.plan)
        replies = await self._live().many(self.keys.fetch(prog))
        if flt.matches_all or (flt.exact and prog):  # every candidate matches: check deadlines only
            flat: list[Any] = []
            keep: list[int] = []
            for reply in replies:
                rows = reply if prog is None or len(prog) == 2 else reply[1]
                base = len(flat)
                flat.extend(rows)
                keep.extend(base + i for i in live_offsets(rows, now))
            return RowsView(flat, keep)
        pred = flt.predicate
        out = []
        decode = _decoder.decode
        for reply in replies:
            rows = reply if prog is None or len(prog) == 2 else reply[1]
            for i in range(0, len(rows), 4):
                m, e = rows[i + 1], rows[i + 3]
                if m is None:
                    continue  # a deadline or index entry whose hash is gone (RedisRegistry's "safety net")
                exp = float(e) if e else None
                if exp is not None and exp <= now:
                    continue
                md = decode(m.decode())
                if not pred(md):
                    continue
                ident = decode_token(rows[i].decode())
                out.append(Identity(ident, MappingProxyType(md), float(rows[i + 2]), exp))
        return out

    async def _live_ids(self, flt: CompiledFilter, now: float) -> list[bytes] | None:
        prog = ids_program(flt)
        if prog is None:
            return None
        return [m for reply in await self._live().many(self.keys.ids(prog, now)) for m in reply]

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        """Ids of the live matches: an exact plan from index sets and deadlines only, else via rows."""
        got = await self._live_ids(flt, now)
        if got is None:
            return [i.id for i in await self.query(flt, now=now)]
        return decode_tokens(got)

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        """How many live identities match ``flt``."""
        if flt.matches_all:
            return sum(int(n) for n in await self._live().many(self.keys.each("ZCOUNT", "{z}", f"({now!r}",
                                                                                "+inf")))
        got = await self._live_ids(flt, now)
        return len(await self.query(flt, now=now)) if got is None else len(got)

    # ------------------------------------------------------------------ expiry
    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        """Remove and return up to ``limit`` expired identities, each to exactly one caller: every shard is
        asked for an equal part, then the shards that filled theirs for the rest. Batches are acknowledged
        per shard (``_redis_claims``), so a reply lost on the way is handed out again, not lost."""
        order = [(self._claim_from + i) % self.shards for i in range(self.shards)]
        self._claim_from = (self._claim_from + 1) % self.shards  # fairness across sweeps
        async with self._claims.lock():  # held until the removals are counted (see claim_shards)
            out, removed, failure = await claim_shards(self._live(), self.keys, self._claims, order, limit,
                                                       now)
            if failure is not None:
                self._meta_suspect = True  # the lost reply's removals were never counted
                if not out:
                    raise failure
            try:
                await self._counter(-removed)
            except Exception:
                self._meta_suspect = True  # the claims stand (they are reported); resynced later
        if self._meta_suspect:
            await self._resync_quietly()
        return out

    async def next_deadline(self) -> float | None:
        """The earliest stored deadline over every shard (possibly already past, a lapsed lifetime's first),
        or None."""
        replies = await self._live().many(self.keys.each("ZRANGE", "{z}", 0, 0, "WITHSCORES")
                                          + self.keys.first_lapsed())
        zs, lapsed = replies[:self.shards], replies[self.shards:]
        finite = [score for got in zs if got and not math.isinf(score := float(got[1]))]
        finite += [float(v.split(b" ", 1)[0]) for v in lapsed if v is not None]
        return min(finite) if finite else None

    async def identities(self) -> int:
        """How many identities are stored (live, or expired but not yet swept), over every shard."""
        return sum(int(n) for n in await self._live().many(self.keys.each("ZCARD", "{z}")))

    # ------------------------------------------------------------------ consistency
    async def resync(self) -> int:
        """Set the stored-identity counter to the true stored count and return it. Writes racing with it
        can leave it off by their number; it is meant for after a failover or a crash."""
        stored = await self.identities()
        await self._live().call(self.keys.meta_slot, "HSET", self.keys.meta, "stored", stored)
        self._meta_suspect = False
        return stored

    async def _resync_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the flag stays set: tried again later
            await self.resync()

    async def check_replication(self) -> int:
        """Confirm replicated writes and re-read the suspect ones now (the watch does this every
        ``confirm_interval``); returns how many acknowledged writes were found lost so far."""
        self._live()
        lost = await self._watch.check()
        if self._meta_suspect:
            await self._resync_quietly()
        return lost

    async def _verify(self, entries: list[Entry]) -> list[Entry]:
        """The entries whose write the shard's current master lacks (the watch's callback)."""
        keys, client = self.keys, self._live()
        await client.refresh()  # only once every owner answers: no retry storm while the cluster is down
        owners = {client.node_for(keys.slots[k]) for _, k, _, _, _ in entries}
        await asyncio.gather(*(client.pipe(addr).call("PING") for addr in owners))
        reads = [(keys.slots[k], "call", ("HMGET", f"{keys.bases[k]}id:{member}", "r", "e"))
                 for _, k, member, _, _ in entries]
        replies = await client.many(reads)
        now = self._now()
        return [entry for entry, (r, e) in zip(entries, replies, strict=True)
                if write_lost(entry[0], entry[3], entry[4], r, e, now)]


__all__ = ["RedisClusterRegistry", "shard_of"]
