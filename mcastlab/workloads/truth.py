"""Ground truth: who the workload registered, with which metadata and deadline, and who died.

The workload updates the truth from the results of its own operations (the deadline a register or
heartbeat returned), so the truth says what the registry *should* answer. It is the reference for

* the targeting audit of each multicast: recipients that were stale (expired but targeted), wrong
  (alive but not matching), and the expected recipients (alive and matching) to check for misses;
* the expected expirations: every registration whose deadline passed without a refresh must be
  reported as expired exactly once.

Identities with an operation in flight during a multicast's enumerate window, or a deadline inside
it, are *uncertain*: either answer is correct, so the audit counts them apart instead of guessing.
All times are seconds since the run's origin.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from mcastlab.measure.recorder import UNKNOWN_CODE


@dataclass(slots=True)
class Snapshot:
    """The truth at a multicast's call instant (kept only until the multicast returns)."""

    t0: float
    alive: np.ndarray
    match: np.ndarray
    deadline: np.ndarray
    unsure: np.ndarray
    log_pos: int


@dataclass(frozen=True, slots=True)
class Audit:
    """Targeting audit of one multicast (counts) and the certain expected recipients (codes)."""

    expected: int
    stale: int
    wrong: int
    uncertain: int
    expected_codes: np.ndarray


class _MetaView:
    """``truth.meta[code]``: the metadata last registered for ``code`` (its interned group)."""

    __slots__ = ("_t",)

    def __init__(self, truth: Truth) -> None:
        self._t = truth

    def __getitem__(self, code: int) -> Mapping[str, Any]:
        t = self._t
        return t.groups[int(t.group[code])]

    def __len__(self) -> int:
        return len(self._t.names)


class Truth:
    """Column arrays indexed by identity code (0..n-1), grown by doubling.

    Metadata is *interned*: identities registered with equal metadata share one group (``groups``,
    ``group[code]``), so a filter is evaluated once per distinct metadata, and a fleet of a million
    identities with a few dozen metadata combinations costs a few dozen predicate calls. Every update
    has a per-identity form and a batch form (``codes`` arrays), used by the cohort engine.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.groups: list[Mapping[str, Any]] = []
        self._group_ids: dict[str, int] = {}
        cap = max(16, capacity)
        self.group = np.zeros(cap, np.int32)
        self.deadline = np.full(cap, -np.inf)
        self.registered = np.zeros(cap, bool)
        self.doubt = np.zeros(cap, bool)
        self.inflight = np.zeros(cap, np.int32)
        self.died = np.full(cap, np.nan)
        self._masks: dict[str, tuple[Any, np.ndarray]] = {}  # filter text -> (predicate, match per group)
        self._log_codes = array("i")
        self._log_t = array("d")
        self.expected_expiries: list[tuple[int, float]] = []
        self.ambiguous: set[int] = set()
        self.anomalies = 0
        self.meta = _MetaView(self)

    def __len__(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------ identities
    def intern(self, metadata: Mapping[str, Any]) -> int:
        """The group id of ``metadata`` (a new group for metadata never seen before)."""
        key = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=repr)
        gid = self._group_ids.get(key)
        if gid is None:
            gid = self._group_ids[key] = len(self.groups)
            self.groups.append(metadata)
        return gid

    def add(self, name: str, metadata: Mapping[str, Any]) -> int:
        """A new identity (not yet registered); returns its code."""
        code = len(self.names)
        if code >= len(self.deadline):
            self._grow(code + 1)
        self.names.append(name)
        self.index[name] = code
        self.group[code] = self.intern(metadata)
        return code

    def add_many(self, names: list[str], group_of: np.ndarray, groups: list[Mapping[str, Any]]) -> np.ndarray:
        """Many new identities at once, with metadata ``groups[group_of[i]]``; returns their codes."""
        first = len(self.names)
        n = len(names)
        if first + n > len(self.deadline):
            self._grow(first + n)
        gids = np.asarray([self.intern(g) for g in groups], np.int32)
        self.names.extend(names)
        self.index.update(zip(names, range(first, first + n), strict=True))
        self.group[first:first + n] = gids[np.asarray(group_of, np.int64)]
        return np.arange(first, first + n, dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = len(self.deadline)
        while cap < need:
            cap *= 2
        for attr, fill in (
            ("group", 0),
            ("deadline", -np.inf),
            ("registered", False),
            ("doubt", False),
            ("inflight", 0),
            ("died", np.nan),
        ):
            old = getattr(self, attr)
            new = np.full(cap, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, attr, new)

    def set_meta(self, code: int, metadata: Mapping[str, Any]) -> None:
        """Record new metadata (as sent by a register)."""
        if self.groups[int(self.group[code])] is not metadata:
            self.group[code] = self.intern(metadata)

    def mask(self, compiled: Any) -> np.ndarray:
        """Boolean array over codes 0..n-1: whose current metadata match ``compiled`` (a CompiledFilter).

        The predicate runs once per metadata group (new groups are tested as they appear).
        """
        got = self._masks.get(compiled.text)
        if got is None:
            got = self._masks[compiled.text] = (compiled.predicate, np.zeros(0, bool))
        pred, per_group = got
        if len(per_group) < len(self.groups):
            fresh = [bool(pred(g)) for g in self.groups[len(per_group):]]
            per_group = np.concatenate([per_group, np.asarray(fresh, bool)])
            self._masks[compiled.text] = (pred, per_group)
        n = len(self.names)
        return per_group[self.group[:n]] if len(per_group) else np.zeros(n, bool)

    # ------------------------------------------------------------------ operation outcomes
    def op_started(self, code: int, t: float) -> None:
        """A state-changing operation on ``code`` was called at ``t``."""
        self.inflight[code] += 1
        self._log_codes.append(code)
        self._log_t.append(t)

    def _lapsed(self, code: int, t_call: float) -> None:
        if self.registered[code] and self.deadline[code] <= t_call:
            if self.doubt[code]:
                self.ambiguous.add(code)
            else:
                self.expected_expiries.append((code, float(self.deadline[code])))

    def registered_ok(self, code: int, t_call: float, deadline: float, metadata: Mapping[str, Any]) -> None:
        """A register returned: the identity is live until ``deadline``."""
        self.inflight[code] -= 1
        self._lapsed(code, t_call)
        self.set_meta(code, metadata)
        self.deadline[code] = deadline
        self.registered[code] = True
        self.doubt[code] = False

    def heartbeat_ok(self, code: int, deadline: float) -> None:
        """A heartbeat returned with the new deadline."""
        self.inflight[code] -= 1
        self.deadline[code] = deadline
        self.doubt[code] = False

    def heartbeat_unknown(self, code: int, t_call: float) -> None:
        """The registry did not know the identity at ``t_call`` (it had expired, or was never there)."""
        self.inflight[code] -= 1
        if self.registered[code] and self.deadline[code] > t_call and not self.doubt[code]:
            self.anomalies += 1  # the registry lost a live identity
        self._lapsed(code, t_call)
        self.registered[code] = False
        self.doubt[code] = False

    def unregistered(self, code: int, t_call: float) -> None:
        """An unregister returned; if the deadline had already passed, its expiry may or may not count."""
        self.inflight[code] -= 1
        if self.registered[code] and self.deadline[code] <= t_call:
            self.ambiguous.add(code)
        self.registered[code] = False
        self.doubt[code] = False

    def failed(self, code: int) -> None:
        """A state-changing operation failed: whether it took effect is unknown until the next success."""
        self.inflight[code] -= 1
        self.doubt[code] = True

    # ------------------------------------------------------------------ batch forms (the cohort engine)
    def batch_started(self, codes: np.ndarray, t: float) -> None:
        """A state-changing batch (a pipelined register) on ``codes`` was called at ``t``."""
        self.inflight[codes] += 1
        self._log_codes.frombytes(np.asarray(codes, np.int32).tobytes())
        self._log_t.frombytes(np.full(len(codes), t, np.float64).tobytes())

    def batch_registered(self, codes: np.ndarray, t_call: float, deadline: float, group: int | np.ndarray,
                         *, started: bool = True) -> None:
        """A pipelined register of ``codes`` returned: live until ``deadline``, metadata group(s)
        ``group`` (a group id of this truth, or one per code)."""
        if started:
            self.inflight[codes] -= 1
        self._batch_lapsed(codes, t_call)
        self.group[codes] = group
        self.deadline[codes] = deadline
        self.registered[codes] = True
        self.doubt[codes] = False

    def _batch_lapsed(self, codes: np.ndarray, t_call: float) -> None:
        """Those of ``codes`` registered with a deadline before ``t_call`` lapsed: expected to expire
        (ambiguous if an operation on them had failed meanwhile)."""
        lapsed = self.registered[codes] & (self.deadline[codes] <= t_call)
        if lapsed.any():
            doubted = lapsed & self.doubt[codes]
            self.ambiguous.update(codes[doubted].tolist())
            sure = codes[lapsed & ~doubted]
            self.expected_expiries.extend(zip(sure.tolist(), self.deadline[sure].tolist(), strict=True))

    def batch_heartbeat(self, codes: np.ndarray, deadline: float) -> None:
        """A pipelined heartbeat of ``codes`` returned with the new deadline (no inflight count: a
        heartbeat of a live identity cannot change whether it is alive or matches)."""
        self.deadline[codes] = deadline
        self.doubt[codes] = False

    def batch_unknown(self, codes: np.ndarray, t_call: float) -> None:
        """A pipelined heartbeat found ``codes`` missing at ``t_call`` (expired, or lost)."""
        live = self.registered[codes] & (self.deadline[codes] > t_call) & ~self.doubt[codes]
        self.anomalies += int(live.sum())
        self._batch_lapsed(codes, t_call)
        self.registered[codes] = False
        self.doubt[codes] = False

    def batch_failed(self, codes: np.ndarray, *, started: bool = False) -> None:
        """A batch failed: whether it took effect is unknown until the next success."""
        if started:
            self.inflight[codes] -= 1
        self.doubt[codes] = True

    def close(self, t_end: float, settle: float) -> None:
        """At the end of a run: registrations whose deadline passed ``settle`` s ago must have expired."""
        n = len(self.names)
        reg = self.registered[:n]
        d = self.deadline[:n]
        for code in np.flatnonzero(reg & (d <= t_end - settle) & ~self.doubt[:n]):
            self.expected_expiries.append((int(code), float(d[code])))
        for code in np.flatnonzero(
            reg & (((d > t_end - settle) & (d <= t_end)) | (self.doubt[:n] & (d <= t_end)))
        ):
            self.ambiguous.add(int(code))
        self.registered[:n] &= ~(d <= t_end)

    # ------------------------------------------------------------------ targeting audit
    def snapshot(self, compiled: Any, t0: float) -> Snapshot:
        """The truth at ``t0`` for a multicast with filter ``compiled``."""
        n = len(self.names)
        d = self.deadline[:n].copy()
        alive = self.registered[:n] & (d > t0)
        unsure = (self.inflight[:n] > 0) | self.doubt[:n]
        return Snapshot(t0, alive, self.mask(compiled), d, unsure, len(self._log_t))

    def forget(self, snap: Snapshot) -> None:
        """A snapshot that will never be audited (its multicast failed); nothing to do here."""

    def audit(self, snap: Snapshot, t_enum: float, targeted: np.ndarray, tol: float = 0.0) -> Audit:
        """Compare the identities a multicast targeted (codes) with the truth at its call instant."""
        n = len(snap.alive)
        unc = snap.unsure | ((snap.deadline > snap.t0 - tol) & (snap.deadline <= t_enum + tol))
        if len(self._log_t) > snap.log_pos:
            # copies (array slices), never views of the growing logs: a view that outlives this call (a
            # profiler holding the frame) would make the next append fail with BufferError
            ts = np.frombuffer(self._log_t[snap.log_pos :], dtype=np.float64)
            cs = np.frombuffer(self._log_codes[snap.log_pos :], dtype=np.int32)
            cs = cs[(ts <= t_enum + tol) & (cs < n)]
            unc[cs] = True
        late = targeted[targeted >= n]  # registered after the snapshot: only possible inside the window
        tmask = np.zeros(n, bool)
        tmask[targeted[targeted < n]] = True
        expected = snap.alive & snap.match
        stale = int((tmask & ~snap.alive & ~unc).sum())
        wrong = int((tmask & snap.alive & ~snap.match & ~unc).sum())
        uncertain = int(((tmask | expected) & unc).sum()) + len(late)
        codes = np.flatnonzero(expected & ~unc).astype(np.int32)
        return Audit(int(expected.sum()), stale, wrong, uncertain, codes)

    def codes_of(self, names: Collection[str]) -> np.ndarray:
        """The codes of identity ``names`` (``UNKNOWN_CODE`` for names this truth never registered), looked
        up in C: a multicast's targets number up to 10**5 per call under load."""
        return np.fromiter(map(self.index.get, names, repeat(UNKNOWN_CODE)), np.int64, len(names))

    def alive_count(self, t: float) -> int:
        """How many identities the registry should report live at ``t``."""
        n = len(self.names)
        return int((self.registered[:n] & (self.deadline[:n] > t)).sum())


__all__ = ["Audit", "Snapshot", "Truth"]
