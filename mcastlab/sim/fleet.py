"""FleetTable: a million identities as numpy columns inside a SimRegistry (the scale path).

Identity ``i`` is named ``prefix`` + ``i`` zero-padded; its state is four columns (present, deadline,
registered_at, metadata group) — about 21 bytes — and its metadata is one of a few shared ``groups``.
Deadlines are analytic: a bulk touch writes the cohort's new deadline into the column and pushes ONE
heap entry ``(deadline, seq, member indices)``; a sweep pops due entries and expires, in one numpy pass,
the members still present whose deadline equals the entry's (members touched since are skipped). So
there is no SimPy process or timeout per identity, and each expiry is claimed exactly once.
Filters run once per metadata group (cached by filter text), then select members with numpy.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, overload

import numpy as np

from mcastlab.backends.base import ExpiredIdentity
from mcastlab.errors import ConfigError
from mcastlab.identity import Identity

_INF = float("inf")
_CACHE_MAX = 8192


class FleetTable:
    """Columnar identities ``prefix0000000`` .. ``prefix{size-1}``; see the module docstring."""

    def __init__(
        self,
        prefix: str,
        size: int,
        groups: Sequence[Mapping[str, Any]],
        group_of: Sequence[int] | np.ndarray | None = None,
        *,
        width: int | None = None,
    ) -> None:
        if size < 1 or not groups:
            raise ConfigError("a fleet needs size >= 1 and at least one metadata group")
        self.prefix = prefix
        self.size = size
        self.width = width or len(str(size - 1))
        self._fmt = prefix + "{:0" + str(self.width) + "d}"
        self.present = np.zeros(size, dtype=bool)
        self.deadline = np.full(size, _INF)
        self.registered_at = np.zeros(size)
        self.group = (
            np.zeros(size, dtype=np.int32) if group_of is None else np.asarray(group_of, dtype=np.int32)
        )
        if self.group.shape != (size,):
            raise ConfigError(f"group_of must have {size} entries, one group id per member")
        self.groups: list[Mapping[str, Any]] = []
        self._group_ids: dict[str, int] = {}
        # members sorted by group as of the last rebuild, plus the members whose group changed since
        self._members: tuple[np.ndarray, np.ndarray] | None = None
        self._moved = np.zeros(size, dtype=bool)
        self._moved_list: list[np.ndarray] = []
        self._n_moved = 0
        self._names: np.ndarray | None = None
        self._match: dict[str, np.ndarray] = {}
        for g in groups:
            self.group_id(g)
        if int(self.group.max()) >= len(self.groups) or int(self.group.min()) < 0:
            raise ConfigError(f"group_of refers to a group that does not exist; there are {len(self.groups)} "
                              "groups, numbered from 0")
        self.n_present = 0
        self._heap: list[tuple[float, int, np.ndarray]] = []
        self._seq = 0

    # names and groups
    def name(self, i: int) -> str:
        return self._fmt.format(i)

    def index(self, name: str) -> int | None:
        """The member index of ``name``, or None if it is not this fleet's."""
        p = self.prefix
        if len(name) != len(p) + self.width or not name.startswith(p):
            return None
        digits = name[len(p) :]
        if not (digits.isascii() and digits.isdigit()):
            return None
        i = int(digits)
        return i if i < self.size else None

    def group_id(self, metadata: Mapping[str, Any]) -> int:
        """Intern ``metadata`` as a group; return its id."""
        key = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
        gid = self._group_ids.get(key)
        if gid is None:
            gid = self._group_ids[key] = len(self.groups)
            self.groups.append(MappingProxyType(dict(metadata)))
            self._match.clear()
        return gid

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns and the deadline heap's index arrays."""
        heap = sum(e[2].nbytes for e in self._heap)
        return (
            self.present.nbytes + self.deadline.nbytes + self.registered_at.nbytes + self.group.nbytes + heap
        )

    # writes (callers pass unique member indices)
    def _push(self, deadline: float, idx: np.ndarray) -> None:
        if deadline != _INF and len(idx):
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, idx))

    def new_count(self, idx: np.ndarray) -> int:
        """How many of ``idx`` are not stored (an upsert would add them)."""
        return int(len(idx) - np.count_nonzero(self.present[idx]))

    def upsert(
        self, idx: np.ndarray, *, now: float, expires_at: float | None, group: int | np.ndarray | None = None
    ) -> tuple[int, list[ExpiredIdentity]]:
        """Store/replace members; return (new or expired count, expiries of replaced expired members)."""
        pres = self.present[idx]
        dl = self.deadline[idx]
        stale = pres & (dl <= now)
        pending = (
            [
                ExpiredIdentity(self.name(i), d)
                for i, d in zip(idx[stale].tolist(), dl[stale].tolist(), strict=True)
            ]
            if stale.any()
            else []
        )
        added = int(len(idx) - np.count_nonzero(pres))
        self.present[idx] = True
        self.n_present += added
        self.registered_at[idx] = now
        exp = _INF if expires_at is None else expires_at
        self.deadline[idx] = exp
        if group is not None:
            changed = self.group[idx] != group
            if changed.any():
                self._note_moved(idx[changed])
            self.group[idx] = group
        self._push(exp, idx)
        return added + len(pending), pending

    def touch(self, idx: np.ndarray, *, now: float, expires_at: float | None) -> np.ndarray:
        """Move live members' deadlines; return the members that were absent or expired."""
        ok = self.present[idx] & (self.deadline[idx] > now)
        done = idx if ok.all() else idx[ok]
        exp = _INF if expires_at is None else expires_at
        self.deadline[done] = exp
        self._push(exp, done)
        return idx[~ok]

    def remove(self, idx: np.ndarray) -> int:
        """Delete members; return how many were stored."""
        gone = idx[self.present[idx]]
        self._drop(gone)
        return len(gone)

    def _drop(self, idx: np.ndarray) -> None:
        self.present[idx] = False
        self.deadline[idx] = _INF
        self.n_present -= len(idx)

    # reads
    def get(self, i: int, now: float) -> Identity | None:
        if not self.present[i]:
            return None
        d = float(self.deadline[i])
        if d <= now:
            return None
        return Identity(
            self.name(i),
            self.groups[int(self.group[i])],
            float(self.registered_at[i]),
            None if d == _INF else d,
        )

    def _groups_matching(self, flt: Any) -> np.ndarray | None:
        if flt.matches_all:
            return None
        gids = self._match.get(flt.text)
        if gids is None:
            pred = flt.predicate
            gids = np.array([g for g, md in enumerate(self.groups) if pred(md)], dtype=np.int64)
            if len(self._match) >= _CACHE_MAX:
                self._match.clear()
            self._match[flt.text] = gids
        return gids

    def _note_moved(self, idx: np.ndarray) -> None:
        """These members changed group: the sorted index no longer lists them right."""
        if self._members is None:
            return
        fresh = idx[~self._moved[idx]]
        self._moved[fresh] = True
        self._moved_list.append(fresh)
        self._n_moved += len(fresh)
        if self._n_moved * 8 > self.size:  # too many to patch around: rebuild on the next query
            self._members = None

    def _member_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Members sorted by group (so an answer costs in proportion to its matches), rebuilt when more
        than an eighth of the fleet changed group since (a radix sort: ~30 ms per million members)."""
        if self._members is None:
            keys = self.group.astype(np.int16) if len(self.groups) < 32_000 else self.group
            order = np.argsort(keys, kind="stable")
            bounds = np.searchsorted(self.group[order], np.arange(len(self.groups) + 1))
            self._members = (order, bounds)
            self._moved[:] = False
            self._moved_list, self._n_moved = [], 0
        return self._members

    def live(self, flt: Any, now: float) -> np.ndarray:
        """Ascending indices of live members matching ``flt``."""
        gids = self._groups_matching(flt)
        if gids is None:
            return np.flatnonzero(self.present & (self.deadline > now))
        if len(gids) == 0:
            return np.empty(0, dtype=np.int64)
        if len(gids) * 4 > len(self.groups):  # most groups match: one pass over the fleet is cheaper
            gm = np.zeros(len(self.groups), dtype=bool)
            gm[gids] = True
            return np.flatnonzero(gm[self.group] & self.present & (self.deadline > now))
        order, bounds = self._member_index()
        # a group newer than the index has no members in it, only moved ones (added below)
        parts = [order[bounds[g] : bounds[g + 1]] for g in gids.tolist() if g + 1 < len(bounds)]
        if not parts:
            parts = [np.empty(0, dtype=np.int64)]
        if self._n_moved:  # members listed under their old group are re-checked; moved ones added
            gm = np.zeros(len(self.groups), dtype=bool)
            gm[gids] = True
            moved = np.concatenate(self._moved_list)
            parts = [p[~self._moved[p]] for p in parts] + [moved[gm[self.group[moved]]]]
        cand = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))
        return cand[self.present[cand] & (self.deadline[cand] > now)]

    def names(self, idx: np.ndarray) -> list[str]:
        """The names of member indices (formatted once per fleet, then looked up)."""
        if self._names is None:
            fmt = self._fmt.format
            self._names = np.asarray([fmt(i) for i in range(self.size)], dtype=object)
        return list(self._names[idx])

    def view(self, idx: np.ndarray) -> FleetView:
        """A read-only sequence of the members' Identity records, built only when accessed."""
        return FleetView(self, idx)

    def identities(self, idx: np.ndarray) -> list[Identity]:
        """Identity records for member indices (built on demand, never stored)."""
        fmt, groups = self._fmt.format, self.groups
        return [
            Identity(fmt(i), groups[g], r, None if d == _INF else d)
            for i, g, r, d in zip(
                idx.tolist(),
                self.group[idx].tolist(),
                self.registered_at[idx].tolist(),
                self.deadline[idx].tolist(),
                strict=True,
            )
        ]

    # expiry
    def claim(self, now: float, limit: int) -> list[ExpiredIdentity]:
        """Remove and return up to ``limit`` members whose deadline is <= now (each exactly once)."""
        out: list[ExpiredIdentity] = []
        heap, fmt = self._heap, self._fmt.format
        while heap and heap[0][0] <= now and len(out) < limit:
            d, _, idx = heap[0]
            due = idx[self.present[idx] & (self.deadline[idx] == d)]
            room = limit - len(out)
            if len(due) > room:
                due = due[:room]  # the entry stays; the rest are claimed next round
            else:
                heapq.heappop(heap)
            self._drop(due)
            out.extend(ExpiredIdentity(fmt(i), d) for i in due.tolist())
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline of a present member (stale heap entries are discarded)."""
        heap = self._heap
        while heap:
            d, _, idx = heap[0]
            if np.any(self.present[idx] & (self.deadline[idx] == d)):
                return d
            heapq.heappop(heap)
        return None


class FleetView(Sequence[Identity]):
    """Some members of a FleetTable as a read-only sequence of Identity records, built when accessed.

    An enumerate over a million-member fleet answers with one of these: its length is free, and the
    simulated query's cost in virtual time is modelled per row, so wall time is not spent building
    hundreds of thousands of records nobody reads. Snapshot semantics: the members' deadlines,
    registration times and metadata groups are copied on first access (before the simulation moves on,
    in practice: right after the enumerate returns).
    """

    __slots__ = ("_cols", "_fleet", "_idx")

    def __init__(self, fleet: FleetTable, idx: np.ndarray) -> None:
        self._fleet = fleet
        self._idx = idx
        self._cols: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._idx)

    def _one(self, k: int) -> Identity:
        f, idx = self._fleet, self._idx
        if self._cols is None:
            self._cols = (f.group[idx], f.registered_at[idx], f.deadline[idx])
        grp, reg, dl = self._cols
        d = float(dl[k])
        return Identity(f.name(int(idx[k])), f.groups[int(grp[k])], float(reg[k]), None if d == _INF else d)

    @overload
    def __getitem__(self, k: int) -> Identity: ...

    @overload
    def __getitem__(self, k: slice) -> list[Identity]: ...

    def __getitem__(self, k: int | slice) -> Identity | list[Identity]:
        if isinstance(k, slice):
            return [self._one(i) for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self._one(k)

    def __iter__(self) -> Iterator[Identity]:
        return (self._one(k) for k in range(len(self)))

    def ids(self) -> list[str]:
        """The members' names (what a multicast needs)."""
        return self._fleet.names(self._idx)

    def __repr__(self) -> str:
        return f"<{len(self):,} identities of fleet {self._fleet.prefix!r}>"


__all__ = ["FleetTable", "FleetView"]
