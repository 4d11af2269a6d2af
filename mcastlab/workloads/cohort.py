"""The cohort engine: a fleet as numpy columns, heartbeating in pipelined batches (sim mode).

A fleet of N devices lives in a :class:`~mcastlab.sim.fleet.FleetTable` inside the simulated registry
(about 21 bytes a member) and in the ground truth's columns; its metadata is one of a few shared groups.
Members are split into cohorts of ``cohort_size`` (a gateway's pipeline); each cohort is ONE scheduled
callback per heartbeat period that registers (``upsert_many``) or heartbeats (``touch_many``) all its
powered members in one batch — so there is no process, coroutine or heap entry per device. Batches are
recorded in the same ``ops`` frame as single operations: one row per batch, ``matched`` = its size,
``identity`` empty, stream ``gateway`` (``gateway-register`` for registrations). Deaths, reboots,
outages and synchronised boots act on index arrays. Multicasts, enumerates, probes, population samples
and the targeting audit are the per-identity engine's own (:class:`~mcastlab.workloads.context.Context`),
so both engines fill the same frames; deliveries to fleet members are received by a sink (the simulated
messaging logs them analytically) and recorded as receipts.

Approximations, stated: a cohort's heartbeats share one instant (no per-device jitter; the cohorts'
phases spread evenly over the boot window and the period), and a reboot's downtime is rounded to
``reboot_resolution`` seconds so that devices coming back together register in one batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mcastlab.errors import BackendError, ConfigError, McastlabError
from mcastlab.sim.fleet import FleetTable
from mcastlab.sim.registry import SimRegistry
from mcastlab.workloads.context import Context

REBOOT_RESOLUTION = 0.1  # seconds: devices rebooted together come back in batches this fine


class _ReceiptSink:
    """A simulated-messaging sink that records fleet members' receipts in the run's recorder."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def append(self, message_id: str, identity: str, t_sent: float, t_received: float,
               status: str = "delivered") -> None:
        code = self.ctx.truth.index.get(identity)
        if code is not None:
            self.ctx.rec.receipt(message_id, code, t_received - self.ctx.origin)

    def append_many(self, message_id: str, identities: Sequence[str], t_sent: float,
                    t_received: np.ndarray) -> None:
        index = self.ctx.truth.index
        codes = np.fromiter((index.get(i, -1) for i in identities), np.int64, len(identities))
        ok = codes >= 0
        self.ctx.rec.receipts(message_id, codes[ok], t_received[ok] - self.ctx.origin)


class FleetContext(Context):
    """A Context whose devices are one vectorised fleet; see the module docstring."""

    def __init__(self, *, registry: Any, messaging: Any, cohort_size: int = 2000, **kw: Any) -> None:
        super().__init__(**kw)
        if not isinstance(registry, SimRegistry):
            raise ConfigError("the cohort engine runs in sim mode only (its fleet lives in the simulated "
                              "registry); use engine: per-identity for live runs", key="engine")
        self.registry = registry
        self.messaging = messaging
        self.cohort_size = cohort_size
        self.beat_period = 60.0
        self.table: FleetTable | None = None
        self.base = 0
        self.n = 0
        self.codes = np.empty(0, np.int64)
        self._tgroup = np.empty(0, np.int32)  # table group id -> truth group id

    # ------------------------------------------------------------------ the fleet
    def fleet(self, prefix: str, size: int, groups: Sequence[Mapping[str, Any]], group_of: np.ndarray, *,
              period: float, boot_window: float) -> np.ndarray:
        """Create the fleet (offline) and its cohorts; returns the members' codes."""
        width = len(str(size - 1))
        table = self.table = self.registry.add_fleet(prefix, size, groups, group_of, width=width)
        self.codes = self.truth.add_many(table.names(np.arange(size)), group_of, list(groups))
        self.base, self.n = int(self.codes[0]), size
        self.want_group = table.group.copy()  # the metadata group each member registers with next
        self.beat_period = period
        self.on = np.zeros(size, bool)  # powered and heartbeating
        self.dead = np.zeros(size, bool)
        self.fresh = np.ones(size, bool)  # must register (boot, reboot, reconnect) rather than heartbeat
        self.cut_mask = np.zeros(size, bool)
        self.generation = np.zeros(size, np.int64)
        n_cohorts = max(1, math.ceil(size / self.cohort_size))
        self.cohort_of = np.arange(size, dtype=np.int64) % n_cohorts
        self._members = [np.arange(c, size, n_cohorts, dtype=np.int64) for c in range(n_cohorts)]
        for c in range(n_cohorts):
            first = c * boot_window / n_cohorts if boot_window else 0.0
            self.at(first, self._boot_cohort, c)
        if self.agents_policy != "none":
            self.messaging.attach_sink(_ReceiptSink(self), prefix)
            self.rec.agents.update(self.codes.tolist())
        return self.codes

    def _boot_cohort(self, t: float, c: int) -> None:
        members = self._members[c]
        members = members[~self.dead[members]]
        self.on[members] = True
        self._tick(t, c)

    def _tick(self, t: float, c: int) -> None:
        members = self._members[c]
        members = members[(self.cohort_of[members] == c) & self.on[members]]
        if len(members):
            if t < self.blocked_until:
                self.cut_mask[members] = True
            else:
                self._spawn(self._batch(t, members))
        self.at(t + self.beat_period, self._tick, c)

    async def _batch(self, t: float, idx: np.ndarray, stream: str = "gateway") -> None:
        """One pipelined round trip: heartbeat the registered members, register the fresh and missing."""
        fresh = self.fresh[idx]
        beat, reg = idx[~fresh], idx[fresh]
        if len(beat):
            missing = await self._heartbeat_batch(t, beat, stream)
            if missing is not None and len(missing):
                reg = np.concatenate([reg, missing])
        if len(reg):
            await self._register_batch(t, reg, f"{stream}-register")

    async def _heartbeat_batch(self, t: float, idx: np.ndarray, stream: str) -> np.ndarray | None:
        assert self.table is not None
        t_call = self.now()
        codes = self.base + idx
        try:
            missing = await self.registry.touch_many(self.table, idx, now=self.runtime.now(), ttl=self.ttl)
        except McastlabError as exc:
            self.truth.batch_failed(codes)
            self.rec.op("heartbeat", stream, -1, t, t_call, self.now(), False, type(exc).__name__,
                        matched=len(idx))
            return None
        deadline = math.inf if self.ttl is None else t_call + self.ttl
        if len(missing):
            gone = np.isin(idx, missing, assume_unique=True)
            self.truth.batch_heartbeat(codes[~gone], deadline)
            self.truth.batch_unknown(self.base + missing, t_call)
        else:
            self.truth.batch_heartbeat(codes, deadline)
        self.rec.op("heartbeat", stream, -1, t, t_call, self.now(), True, matched=len(idx),
                    failed=len(missing))
        return missing

    async def _register_batch(self, t: float, idx: np.ndarray, stream: str) -> None:
        assert self.table is not None
        t_call = self.now()
        codes = self.base + idx
        self.truth.batch_started(codes, t_call)
        groups = self.want_group[idx]
        try:
            limit = self.coord.config.max_identities
            added = await self.registry.upsert_many(self.table, idx, now=self.runtime.now(), ttl=self.ttl,
                                                    group=groups, max_identities=limit)
        except McastlabError as exc:
            self.truth.batch_failed(codes, started=True)
            self.rec.op("register", stream, -1, t, t_call, self.now(), False, type(exc).__name__,
                        matched=len(idx))
            if isinstance(exc, BackendError):
                self.on_cut_many(idx)
            return
        self.fresh[idx] = False
        self.coord.population.added(added)
        deadline = math.inf if self.ttl is None else t_call + self.ttl
        self.truth.batch_registered(codes, t_call, deadline, self._truth_groups(groups))
        self.rec.op("register", stream, -1, t, t_call, self.now(), True, matched=len(idx))

    def _truth_groups(self, table_gids: np.ndarray) -> np.ndarray:
        """The ground truth's group ids of fleet-table group ids (new table groups are interned)."""
        assert self.table is not None
        groups = self.table.groups
        if len(self._tgroup) < len(groups):
            extra = [self.truth.intern(g) for g in groups[len(self._tgroup):]]
            self._tgroup = np.concatenate([self._tgroup, np.asarray(extra, np.int32)])
        return self._tgroup[table_gids]

    def on_cut_many(self, idx: np.ndarray) -> None:
        """A batch could not reach the registry: its members stay fresh (they register next tick)."""
        self.fresh[idx] = True

    # ------------------------------------------------------------------ Context's group operations
    def _idx(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, np.int64) - self.base

    def online(self) -> np.ndarray:
        return self.base + np.flatnonzero(self.on & ~self.dead)

    def kill_at(self, times: np.ndarray, codes: np.ndarray) -> None:
        order = np.argsort(times, kind="stable")
        times, codes = np.asarray(times, float)[order], np.asarray(codes, np.int64)[order]
        for t in np.unique(times).tolist():
            self.at(float(t), self._kill, codes[times == t])

    def _kill(self, t: float, codes: np.ndarray) -> None:
        self.kill_many(t, codes)

    def kill_many(self, t: float, codes: np.ndarray) -> None:
        idx = self._idx(codes)
        idx = idx[~self.dead[idx]]
        self.on[idx] = False
        self.dead[idx] = True
        self.generation[idx] += 1
        live = self.base + idx
        self.truth.died[live] = t
        self.deaths.extend(live.tolist())
        for code in live.tolist():
            self.at(max(t, float(self.truth.deadline[code])), self._probe_start, code)

    def reboot_many(self, t: float, codes: np.ndarray, downs: np.ndarray | float,
                    update: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None, stream: str) -> None:
        assert self.table is not None
        idx = self._idx(codes)
        idx = idx[self.on[idx] & ~self.dead[idx]]
        if not len(idx):
            return
        down = np.broadcast_to(np.asarray(downs, float), len(codes))[: len(idx)]
        self.on[idx] = False
        self.generation[idx] += 1
        if update is not None:  # the metadata they will register with: computed once per group
            table = self.table
            old = self.want_group[idx]
            new_of = {int(g): table.group_id(update(table.groups[int(g)])) for g in np.unique(old)}
            self.want_group[idx] = np.asarray([new_of[int(g)] for g in old.tolist()], np.int32)
        up = np.round((t + down) / REBOOT_RESOLUTION) * REBOOT_RESOLUTION
        for when in np.unique(up).tolist():
            sel = idx[up == when]
            self.at(float(when), self._up, sel, self.generation[sel].copy(), stream)

    def _up(self, t: float, idx: np.ndarray, gens: np.ndarray, stream: str) -> None:
        idx = idx[(self.generation[idx] == gens) & ~self.dead[idx]]
        if not len(idx):
            return
        self.on[idx] = True
        self.fresh[idx] = True
        if t < self.blocked_until:
            self.cut_mask[idx] = True
        else:
            self._spawn(self._register_batch(t, idx, stream))

    def boot_together(self, t: float, codes: np.ndarray, *, jitter: float, stream: str) -> None:
        """Reboot now into one new cohort whose heartbeats are phase-locked (no jitter in this engine)."""
        idx = self._idx(codes)
        idx = idx[~self.dead[idx]]
        c = len(self._members)
        self._members.append(idx)
        self.cohort_of[idx] = c
        self.generation[idx] += 1
        self.on[idx] = True
        self.fresh[idx] = True
        self._spawn(self._register_batch(t, idx, stream))
        self.at(t + self.beat_period, self._tick, c)

    def cut_off(self, codes: np.ndarray) -> None:
        self.cut_mask[self._idx(codes)] = True

    def reconnect_cut(self, t: float, spread: float, rng: np.random.Generator) -> None:
        idx = np.flatnonzero(self.cut_mask & ~self.dead)
        self.cut_mask[:] = False
        if not len(idx):
            return
        delays = rng.uniform(0, spread, len(idx)) if spread else np.zeros(len(idx))
        self.generation[idx] += 1
        self.on[idx] = False
        up = t + np.round(delays / REBOOT_RESOLUTION) * REBOOT_RESOLUTION
        for when in np.unique(up).tolist():
            sel = idx[up == when]
            self.at(float(when), self._up, sel, self.generation[sel].copy(), "reconnect")


__all__ = ["REBOOT_RESOLUTION", "FleetContext"]
