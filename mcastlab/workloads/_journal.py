"""The ground truth of a replicated run: each replica journals its truth, the parent replays them as one.

A replica's :class:`~mcastlab.workloads.truth.Truth` only learns the outcomes of the operations *it*
issued, so alone it cannot audit a multicast that reached identities of other replicas, nor say which
expirations the whole run owes. :class:`JournaledTruth` is a Truth that also appends each update, with
the wall-clock instant it happened (seconds since the run's shared origin), to a journal. :func:`replay`
merges every replica's journal in time order into one Truth — the truth a single process issuing every
operation would have built — taking each multicast's snapshot and audit, and each population sample's
live count, at the instants the replica took them. Replicas on different hosts need clocks in step (NTP:
a few ms, inside the audit's tolerance).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcastlab.errors import UnsupportedError
from mcastlab.filters import compile_filter
from mcastlab.measure.recorder import UNKNOWN_CODE
from mcastlab.workloads.truth import Audit, Truth

Entry = tuple[Any, ...]  # (t, kind, *args)


class JournaledTruth(Truth):
    """A Truth that journals every update (see the module docstring); ``clock()`` is the run's ``now``."""

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock
        self.journal: list[Entry] = []
        self._quiet = False
        self._snaps = 0
        self._audits = 0
        self._samples = 0
        self._snap_keys: dict[int, int] = {}  # id(snapshot) -> its key, until audited

    def _j(self, *entry: Any) -> None:
        self.journal.append((self.clock(), *entry))

    def add(self, name: str, metadata: Mapping[str, Any]) -> int:
        code = super().add(name, metadata)
        self._j("add", code, name, int(self.group[code]))
        return code

    def set_meta(self, code: int, metadata: Mapping[str, Any]) -> None:
        super().set_meta(code, metadata)
        if not self._quiet:
            self._j("meta", code, int(self.group[code]))

    def op_started(self, code: int, t: float) -> None:
        super().op_started(code, t)
        self._j("start", code, t)

    def registered_ok(self, code: int, t_call: float, deadline: float, metadata: Mapping[str, Any]) -> None:
        self._quiet = True
        try:
            super().registered_ok(code, t_call, deadline, metadata)
        finally:
            self._quiet = False
        self._j("ok", code, t_call, deadline, int(self.group[code]))

    def heartbeat_ok(self, code: int, deadline: float) -> None:
        super().heartbeat_ok(code, deadline)
        self._j("hb", code, deadline)

    def heartbeat_unknown(self, code: int, t_call: float) -> None:
        super().heartbeat_unknown(code, t_call)
        self._j("unknown", code, t_call)

    def unregistered(self, code: int, t_call: float) -> None:
        super().unregistered(code, t_call)
        self._j("unreg", code, t_call)

    def failed(self, code: int) -> None:
        super().failed(code)
        self._j("fail", code)

    def snapshot(self, compiled: Any, t0: float) -> Any:
        snap = super().snapshot(compiled, t0)
        self._j("snap", self._snaps, compiled.text, t0)
        self._snap_keys[id(snap)] = self._snaps
        self._snaps += 1
        return snap

    def forget(self, snap: Any) -> None:
        """A snapshot whose multicast failed (it is never audited)."""
        self._snap_keys.pop(id(snap), None)

    def audit(self, snap: Any, t_enum: float, targeted: np.ndarray, tol: float = 0.0) -> Audit:
        self._j("audit", self._snap_keys.pop(id(snap)), self._audits, t_enum, targeted.tolist(), tol)
        self._audits += 1
        return super().audit(snap, t_enum, targeted, tol)

    def alive_count(self, t: float) -> int:
        self._j("alive", self._samples, t)
        self._samples += 1
        return super().alive_count(t)

    def _batch(self, *_a: Any, **_k: Any) -> None:
        raise UnsupportedError("the cohort engine's batch updates are not journaled: replicas run live, "
                               "per identity")

    batch_started = batch_registered = batch_heartbeat = batch_unknown = batch_failed = _batch


@dataclass
class Replayed:
    """What a replay gives: the merged truth, each replica's code and group maps into it, the audits of
    its multicasts (in the order it took them) and the live counts of its population samples."""

    truth: Truth
    codes: list[np.ndarray] = field(default_factory=list)  # replica -> local code -> merged code
    audits: list[list[Audit]] = field(default_factory=list)
    alive: list[list[int]] = field(default_factory=list)


def replay(journals: Sequence[Sequence[Entry]], groups: Sequence[Sequence[Mapping[str, Any]]]) -> Replayed:
    """Merge the replicas' journals (and their metadata groups) into one truth; see the module docstring."""
    g = Truth()
    n = len(journals)
    code_maps: list[dict[int, int]] = [{} for _ in range(n)]
    gid_maps: list[dict[int, int]] = [{} for _ in range(n)]
    snaps: list[dict[int, Any]] = [{} for _ in range(n)]
    audits: list[dict[int, Audit]] = [{} for _ in range(n)]
    alive: list[dict[int, int]] = [{} for _ in range(n)]
    compiled: dict[str, Any] = {}

    def gid(r: int, local: int) -> int:
        got = gid_maps[r].get(local)
        if got is None:
            got = gid_maps[r][local] = g.intern(groups[r][local])
        return got

    def keyed(r: int, journal: Sequence[Entry]) -> Any:
        return ((e[0], r, i, e) for i, e in enumerate(journal))

    stream = heapq.merge(*(keyed(r, j) for r, j in enumerate(journals)))
    for _t, r, _i, e in stream:
        kind = e[1]
        cm = code_maps[r]
        if kind == "add":
            _, _, local, name, grp = e
            code = g.index.get(name)
            if code is None:
                code = g.add(name, groups[r][grp])
            cm[local] = code
        elif kind == "meta":
            g.group[cm[e[2]]] = gid(r, e[3])
        elif kind == "start":
            g.op_started(cm[e[2]], e[3])
        elif kind == "ok":
            _, _, local, t_call, deadline, grp = e
            g.registered_ok(cm[local], t_call, deadline, g.groups[gid(r, grp)])
        elif kind == "hb":
            g.heartbeat_ok(cm[e[2]], e[3])
        elif kind == "unknown":
            g.heartbeat_unknown(cm[e[2]], e[3])
        elif kind == "unreg":
            g.unregistered(cm[e[2]], e[3])
        elif kind == "fail":
            g.failed(cm[e[2]])
        elif kind == "snap":
            _, _, key, text, t0 = e
            flt = compiled.get(text)
            if flt is None:
                flt = compiled[text] = compile_filter(text)
            snaps[r][key] = g.snapshot(flt, t0)
        elif kind == "audit":  # keyed by the order the replica audited (= its multicast rows' order)
            _, _, key, ordinal, t_enum, targeted, tol = e
            unk = UNKNOWN_CODE
            mapped = np.asarray([cm.get(c, unk) if c < unk else unk for c in targeted], np.int64)
            audits[r][ordinal] = g.audit(snaps[r].pop(key), t_enum, mapped, tol)
        elif kind == "alive":
            alive[r][e[2]] = g.alive_count(e[3])
    out = Replayed(g)
    for r in range(n):
        size = max(code_maps[r], default=-1) + 1
        arr = np.full(size, -1, np.int64)
        for local, code in code_maps[r].items():
            arr[local] = code
        out.codes.append(arr)
        out.audits.append([audits[r][k] for k in sorted(audits[r])])
        out.alive.append([alive[r][k] for k in sorted(alive[r])])
    return out


__all__ = ["JournaledTruth", "Replayed", "replay"]
