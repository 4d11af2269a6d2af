"""SimRegistry: the embedded MemoryRegistry behind a simulated single-threaded server.

Each operation (1) asks the fault plan what happens to it (outage: fail after ``connect_timeout``;
error: served, then fails; drop: the client times out; slow: times scaled), (2) is applied to the
wrapped MemoryRegistry (or a columnar FleetTable) at its arrival time — FCFS makes the arrival order the
server's execution order, so results match applying it when served — and (3) waits, in one SimPy
timeout, for its queueing delay (Lindley, see :mod:`mcastlab.sim.queue`), its service time and its
network round trip. Bulk methods (``upsert_many``/``touch_many``/``remove_many``) model one pipelined
batch and let fleet drivers heartbeat a million identities without a process per identity.
An expired-but-unswept identity that is registered again is still reported once by ``claim_expired``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from mcastlab.backends.base import Capabilities, ExpiredIdentity
from mcastlab.backends.memory import MemoryRegistry
from mcastlab.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    OperationTimeoutError,
    RegistryFullError,
)
from mcastlab.identity import Identity
from mcastlab.runtime import SimAwait, SimPyRuntime
from mcastlab.sim._bind import bind_runtime, spawn_generators
from mcastlab.sim.cpu import SimCpu
from mcastlab.sim.faults import DROP, ERROR, OUTAGE, REGISTRY_OPS, FaultPlan
from mcastlab.sim.fleet import FleetTable
from mcastlab.sim.host import admit
from mcastlab.sim.models import GapSampler, Sampler
from mcastlab.sim.queue import FcfsServer, OpStats

if TYPE_CHECKING:
    from mcastlab.filters import CompiledFilter
    from mcastlab.sim.spec import RegistrySpec

_by_id = attrgetter("id")


class SimRegistry:
    """Registry protocol in virtual time; see the module docstring."""

    name = "sim-registry"
    capabilities = Capabilities()  # the gauge follows bulk fleet writes through Population.added

    def __init__(
        self,
        spec: RegistrySpec,
        *,
        rng: np.random.Generator,
        faults: FaultPlan | None = None,
        inner: MemoryRegistry | None = None,
        cpu: SimCpu | None = None,
    ) -> None:
        self.spec = spec
        self.cpu = cpu  # the coordinator process's CPU (client work); None: not modelled
        self.runtime: SimPyRuntime | None = None  # bound by open(runtime)
        self.env: Any = None
        self.inner = inner if inner is not None else MemoryRegistry()
        gens = spawn_generators(rng, 2 * len(REGISTRY_OPS))
        self._service = {
            op: Sampler(spec.model("service", op), gens[2 * k]) for k, op in enumerate(REGISTRY_OPS)
        }
        self._network = {
            op: Sampler(spec.model("network", op), gens[2 * k + 1]) for k, op in enumerate(REGISTRY_OPS)
        }
        self.shards = [FcfsServer(spec.servers) for _ in range(spec.shards)]
        self._wake = None if spec.wake is None else GapSampler(spec.wake, spawn_generators(rng, 1)[0])
        self.server = self.shards[0]
        self._timeout = spec.timeout
        self.faults = faults if faults is not None else FaultPlan((), None)
        self._faulty = bool(self.faults)
        self.stats = OpStats()
        self._counters = {op: self.stats[op] for op in REGISTRY_OPS}
        self.fleets: list[FleetTable] = []
        self._pending: list[ExpiredIdentity] = []

    @property
    def server_busy(self) -> float:
        """Service time handed out by every shard's server so far (seconds)."""
        return sum(s.busy for s in self.shards)

    # ------------------------------------------------------------------ timing
    def _wait(self, op: str, n: int = 0, factor: float = 1.0, key: str | None = None) -> Any:
        """The awaitable for ``op``: client CPU (request), server queue + service, round trip, client CPU
        (decoding ``n`` items) — one SimPy timeout, no coroutine on the hot path. ``key``: the identity
        an operation is about (it picks the shard when there are several)."""
        if len(self.shards) > 1:
            return self._wait_sharded(op, n, factor, key)
        env = self.env
        now = env.now
        svc = self._service[op](n)
        net = self._network[op](n)
        if factor != 1.0:
            svc *= factor
            net *= factor
        cpu = self.cpu
        ready = now if cpu is None else cpu.charge(now, cpu.call(op))
        server = self.server
        arrive = ready
        if self._wake is not None:  # a server that sat idle starts late (it wakes up): registry.wake
            arrive += self._wake(ready - server.first_free)
        held, host = svc, None if cpu is None else cpu.host
        if server.servers == 1 and host is None:  # FcfsServer.admit, inlined for the common case
            start = server._free if server._free > arrive else arrive
            server._free = start + svc
            server.busy += svc
        else:  # several servers, or the machine's cores shared with the other processes (sim/host.py)
            start, held = admit(server, arrive, svc, host)
        c = self._counters[op]
        c.count += 1
        c.items += n
        c.wait_s += start - arrive
        c.service_s += svc
        return self._finish(op, now, start + held + net, n)

    def _finish(self, op: str, now: float, done: float, n: int) -> Any:
        """Wait until ``done`` (the reply), then decode ``n`` items on the client CPU; time out if late."""
        cpu = self.cpu
        if cpu is not None and n:  # decoding the reply queues on the CPU when the reply arrives
            work = cpu.items(op, n)
            if work > 0:
                timeout = self._timeout
                if timeout is not None and done - now > timeout:
                    return self._time_out(op, timeout)
                return self._decode(done - now, work)
        delay = done - now
        timeout = self._timeout
        if timeout is not None and delay > timeout:
            return self._time_out(op, timeout)
        return SimAwait(self.env.timeout(delay))

    def _wait_sharded(self, op: str, n: int, factor: float, key: str | None) -> Any:
        """``_wait`` over several shards: an identity's operation queues on its shard only (CRC-32 of its
        name, as RedisClusterRegistry routes); anything else is one request per shard, sent together,
        each serving its share of the ``n`` items, and the reply is the last shard's."""
        now = self.env.now
        shards = self.shards
        if key is not None:
            asks = [(zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(shards), n)]
        else:
            per, extra = divmod(n, len(shards))
            asks = [(k, per + (1 if k < extra else 0)) for k in range(len(shards))]
        cpu = self.cpu
        ready = now if cpu is None else cpu.charge(now, cpu.call(op) * len(asks))
        c = self._counters[op]
        c.count += 1
        c.items += n
        last = ready
        wake, host = self._wake, None if cpu is None else cpu.host
        for k, nk in asks:
            svc = self._service[op](nk) * factor
            arrive = ready if wake is None else ready + wake(ready - shards[k].first_free)
            start, held = admit(shards[k], arrive, svc, host)
            c.wait_s += start - arrive
            c.service_s += svc
            last = max(last, start + held)
        return self._finish(op, now, last + self._network[op](n) * factor, n)

    async def _decode(self, reply_in: float, work: float) -> None:
        """Wait for the reply, then for the client CPU to decode it (queued behind what else it does)."""
        env = self.env
        await SimAwait(env.timeout(reply_in))
        assert self.cpu is not None
        await SimAwait(env.timeout(self.cpu.charge(env.now, work) - env.now))

    async def _time_out(self, op: str, timeout: float) -> None:
        await SimAwait(self.env.timeout(timeout))
        self.stats[op].fail("timeout")
        raise OperationTimeoutError(
            f"simulated registry {op} did not complete within {timeout} s", backend=self.name
        )

    async def _gate(self, op: str) -> float:
        """The slow-down factor for ``op`` now, or wait out its fault and raise it."""
        decision, factor, delay = self.faults.decide(op, self.env.now)
        if decision == OUTAGE:
            self.stats[op].fail("outage")
            await SimAwait(self.env.timeout(self.spec.connect_timeout if delay is None else delay))
            raise BackendUnavailableError(
                f"simulated registry is down (outage) during {op}", backend=self.name
            )
        if decision == ERROR:
            await self._wait(op, 0, factor)
            self.stats[op].fail("error")
            raise BackendError(f"simulated registry error during {op}", backend=self.name)
        if decision == DROP:
            self.stats[op].fail("drop")
            wait = self.spec.timeout if self.spec.timeout is not None else 1.0
            await SimAwait(self.env.timeout(wait))
            raise OperationTimeoutError(
                f"simulated registry request lost during {op} (no reply in {wait} s)", backend=self.name
            )
        return factor

    # ------------------------------------------------------------------ fleets
    def add_fleet(
        self,
        prefix: str,
        size: int,
        groups: Sequence[Mapping[str, Any]],
        group_of: Sequence[int] | np.ndarray | None = None,
        *,
        width: int | None = None,
    ) -> FleetTable:
        """Reserve ``prefix`` + index names for a columnar fleet (nothing is registered yet)."""
        fleet = FleetTable(prefix, size, groups, group_of, width=width)
        for f in self.fleets:
            if f.prefix.startswith(prefix) or prefix.startswith(f.prefix):
                raise ConfigError(f"fleet prefix {prefix!r} overlaps fleet prefix {f.prefix!r}; give each "
                                  "fleet a prefix that is not a prefix of another's")
        self.fleets.append(fleet)
        return fleet

    def _route(self, identity_id: str) -> tuple[FleetTable, int] | None:
        for f in self.fleets:
            i = f.index(identity_id)
            if i is not None:
                return f, i
        return None

    def _stored(self) -> int:
        return len(self.inner) + sum(f.n_present for f in self.fleets)

    def _check_room(self, adding: int, max_identities: int | None) -> None:
        if max_identities is not None and adding and self._stored() + adding > max_identities:
            raise RegistryFullError(
                f"registry is full: {self._stored()} identities stored, max_identities={max_identities}; "
                "raise Config.max_identities or unregister some",
                limit=max_identities,
            )

    async def upsert_many(
        self,
        fleet: FleetTable,
        idx: np.ndarray,
        *,
        now: float,
        ttl: float | None,
        group: int | np.ndarray | None = None,
        max_identities: int | None = None,
    ) -> int:
        """Register fleet members in one pipelined batch; return how many were new (or had expired)."""
        factor = 1.0 if not self._faulty else await self._gate("batch")
        self._check_room(fleet.new_count(idx), max_identities)
        added, pending = fleet.upsert(
            idx, now=now, expires_at=None if ttl is None else now + ttl, group=group
        )
        self._pending.extend(pending)
        await self._wait("batch", len(idx), factor)
        return added

    async def touch_many(
        self, fleet: FleetTable, idx: np.ndarray, *, now: float, ttl: float | None
    ) -> np.ndarray:
        """Heartbeat fleet members in one batch; return the members that were absent or expired."""
        factor = 1.0 if not self._faulty else await self._gate("batch")
        missing = fleet.touch(idx, now=now, expires_at=None if ttl is None else now + ttl)
        await self._wait("batch", len(idx), factor)
        return missing

    async def remove_many(self, fleet: FleetTable, idx: np.ndarray) -> int:
        """Unregister fleet members in one batch; return how many were stored."""
        factor = 1.0 if not self._faulty else await self._gate("batch")
        n = fleet.remove(idx)
        await self._wait("batch", len(idx), factor)
        return n

    # ------------------------------------------------------------------ Registry protocol
    async def open(self, runtime: Any) -> None:
        self.runtime, self.env = bind_runtime(self, runtime)
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def upsert(self, identity: Identity, *, now: float, max_identities: int | None) -> bool:
        factor = 1.0 if not self._faulty else await self._gate("register")
        try:
            routed = self._route(identity.id) if self.fleets else None
            if routed is not None:
                fleet, i = routed
                idx = np.array([i])
                self._check_room(fleet.new_count(idx), max_identities)
                added, pending = fleet.upsert(
                    idx, now=now, expires_at=identity.expires_at, group=fleet.group_id(identity.metadata)
                )
                self._pending.extend(pending)
                is_new = added > 0
            else:
                old = self.inner.peek(identity.id)
                self._check_room(1 if old is None else 0, max_identities)
                # a lapsed, unswept lifetime replaced here is owed to the sweeper by the memory registry
                is_new = await self.inner.upsert(identity, now=now, max_identities=None)
        except RegistryFullError:
            await self._wait("register", 0, factor, identity.id)
            raise
        await self._wait("register", 0, factor, identity.id)
        return is_new

    async def touch(self, identity_id: str, expires_at: float | None, *, now: float) -> Identity | None:
        factor = 1.0 if not self._faulty else await self._gate("heartbeat")
        routed = self._route(identity_id) if self.fleets else None
        if routed is not None:
            fleet, i = routed
            missing = fleet.touch(np.array([i]), now=now, expires_at=expires_at)
            rec = None if len(missing) else fleet.get(i, now)
        else:
            rec = await self.inner.touch(identity_id, expires_at, now=now)
        await self._wait("heartbeat", 0, factor, identity_id)
        return rec

    async def remove(self, identity_id: str) -> bool:
        factor = 1.0 if not self._faulty else await self._gate("unregister")
        routed = self._route(identity_id) if self.fleets else None
        if routed is not None:
            removed = routed[0].remove(np.array([routed[1]])) > 0
        else:
            removed = await self.inner.remove(identity_id)
        await self._wait("unregister", 0, factor, identity_id)
        return removed

    async def get(self, identity_id: str, *, now: float) -> Identity | None:
        factor = 1.0 if not self._faulty else await self._gate("get")
        routed = self._route(identity_id) if self.fleets else None
        rec = (
            routed[0].get(routed[1], now)
            if routed is not None
            else await self.inner.get(identity_id, now=now)
        )
        await self._wait("get", 0, factor, identity_id)
        return rec

    async def query(self, flt: CompiledFilter, *, now: float) -> Sequence[Identity]:
        """The matches; a fleet's members come as a lazy :class:`FleetView` (records built on access)."""
        factor = 1.0 if not self._faulty else await self._gate("query")
        found: Sequence[Identity] = await self.inner.query(flt, now=now)
        views = [v for v in (f.view(f.live(flt, now)) for f in self.fleets) if len(v)]
        if views and not found and len(views) == 1:
            found = views[0]
        else:
            rows = sorted(found, key=_by_id)  # index sets iterate in hash order: keep runs independent of it
            for v in views:
                rows.extend(v)
            found = rows
        await self._wait("query", len(found), factor)
        return found

    async def query_ids(self, flt: CompiledFilter, *, now: float) -> list[str]:
        factor = 1.0 if not self._faulty else await self._gate("ids")
        ids = sorted(await self.inner.query_ids(flt, now=now))
        for fleet in self.fleets:
            ids.extend(fleet.names(fleet.live(flt, now)))
        await self._wait("ids", len(ids), factor)
        return ids

    async def count(self, flt: CompiledFilter, *, now: float) -> int:
        """Like the live registries, a count reads ids only (the ``ids`` costs)."""
        factor = 1.0 if not self._faulty else await self._gate("count")
        n = await self.inner.count(flt, now=now)
        for fleet in self.fleets:
            n += len(fleet.live(flt, now))
        await self._wait("ids", n, factor)
        return n

    async def claim_expired(self, *, now: float, limit: int) -> list[ExpiredIdentity]:
        factor = 1.0 if not self._faulty else await self._gate("claim")
        out = self._pending[:limit]
        del self._pending[:limit]
        if len(out) < limit:
            out.extend(await self.inner.claim_expired(now=now, limit=limit - len(out)))
        for fleet in self.fleets:
            if len(out) >= limit:
                break
            out.extend(fleet.claim(now, limit - len(out)))
        await self._wait("claim", len(out), factor)
        return out

    async def next_deadline(self) -> float | None:
        factor = 1.0 if not self._faulty else await self._gate("next_deadline")
        cands = [await self.inner.next_deadline()]
        cands.extend(f.next_deadline() for f in self.fleets)
        cands.extend(p.deadline for p in self._pending[:1])
        found = [c for c in cands if c is not None]
        await self._wait("next_deadline", 0, factor)
        return min(found) if found else None

    def __len__(self) -> int:
        return self._stored()


__all__ = ["SimRegistry", "bind_runtime", "spawn_generators"]
