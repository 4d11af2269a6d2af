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

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


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


class Truth:
    """Column arrays indexed by identity code (0..n-1), grown by doubling."""

    def __init__(self, capacity: int = 1024) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.meta: list[Mapping[str, Any]] = []
        cap = max(16, capacity)
        self.deadline = np.full(cap, -np.inf)
        self.registered = np.zeros(cap, bool)
        self.doubt = np.zeros(cap, bool)
        self.inflight = np.zeros(cap, np.int32)
        self.died = np.full(cap, np.nan)
        self.version = np.zeros(cap, np.int64)  # bumped on each metadata change
        self._masks: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
        self._log_codes = array("i")
        self._log_t = array("d")
        self.expected_expiries: list[tuple[int, float]] = []
        self.ambiguous: set[int] = set()
        self.anomalies = 0

    def __len__(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------ identities
    def add(self, name: str, metadata: Mapping[str, Any]) -> int:
        """A new identity (not yet registered); returns its code."""
        code = len(self.names)
        if code >= len(self.deadline):
            self._grow()
        self.names.append(name)
        self.index[name] = code
        self.meta.append(metadata)
        self.version[code] += 1
        return code

    def _grow(self) -> None:
        cap = 2 * len(self.deadline)
        for attr, fill in (
            ("deadline", -np.inf),
            ("registered", False),
            ("doubt", False),
            ("inflight", 0),
            ("died", np.nan),
            ("version", 0),
        ):
            old = getattr(self, attr)
            new = np.full(cap, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, attr, new)
        for text, (pred, old, seen) in list(self._masks.items()):
            new = np.zeros(cap, bool)
            new[: len(old)] = old
            new_seen = np.zeros(cap, np.int64)
            new_seen[: len(seen)] = seen
            self._masks[text] = (pred, new, new_seen)

    def set_meta(self, code: int, metadata: Mapping[str, Any]) -> None:
        """Record new metadata (as sent by a register)."""
        if self.meta[code] is metadata:
            return
        self.meta[code] = metadata
        self.version[code] += 1

    def mask(self, compiled: Any) -> np.ndarray:
        """Boolean array: which identities' current metadata match ``compiled`` (a CompiledFilter).

        Evaluated lazily: only identities whose metadata changed since the last call are re-tested.
        """
        got = self._masks.get(compiled.text)
        if got is None:
            cap = len(self.deadline)
            got = self._masks[compiled.text] = (
                compiled.predicate,
                np.zeros(cap, bool),
                np.zeros(cap, np.int64),
            )
        pred, arr, seen = got
        n = len(self.names)
        stale = np.flatnonzero(seen[:n] != self.version[:n])
        meta = self.meta
        for i in stale:
            arr[i] = bool(pred(meta[i]))
        seen[stale] = self.version[stale]
        return arr

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
        return Snapshot(t0, alive, self.mask(compiled)[:n].copy(), d, unsure, len(self._log_t))

    def audit(self, snap: Snapshot, t_enum: float, targeted: np.ndarray, tol: float = 0.0) -> Audit:
        """Compare the identities a multicast targeted (codes) with the truth at its call instant."""
        n = len(snap.alive)
        unc = snap.unsure | ((snap.deadline > snap.t0 - tol) & (snap.deadline <= t_enum + tol))
        if len(self._log_t) > snap.log_pos:
            ts = np.frombuffer(self._log_t, dtype=np.float64)[snap.log_pos :]
            cs = np.frombuffer(self._log_codes, dtype=np.int32)[snap.log_pos :]
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

    def alive_count(self, t: float) -> int:
        """How many identities the registry should report live at ``t``."""
        n = len(self.names)
        return int((self.registered[:n] & (self.deadline[:n] > t)).sum())


__all__ = ["Audit", "Snapshot", "Truth"]
