"""Recorder: measurements collected into column arrays during a run (never lists of tuples).

Numbers go into ``array.array`` columns, strings are interned to small integer codes, and identities
are referred to by the workload's integer code; :mod:`mcastlab.measure.frames` turns the columns into
the tidy pandas frames at the end. Every time is seconds since the run's origin.
"""

from __future__ import annotations

from array import array
from operator import countOf
from typing import Any

import numpy as np

from mcastlab.backends.base import DELIVERED, STATUSES

UNKNOWN_CODE = 1 << 30  # a multicast target's code when the ground truth never registered it

STATUS_CODES = {s: i for i, s in enumerate(STATUSES)}


class Interner:
    """Strings to dense integer codes (code 0 is the empty string)."""

    __slots__ = ("codes", "names")

    def __init__(self) -> None:
        self.names: list[str] = [""]
        self.codes: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        code = self.codes.get(s)
        if code is None:
            code = self.codes[s] = len(self.names)
            self.names.append(s)
        return code


class Recorder:
    """Column arrays for ops, multicasts, deliveries, receipts, expirations, probes and population."""

    def __init__(self) -> None:
        self.ops_names = Interner()
        self.streams = Interner()
        self.errors = Interner()
        self.filters = Interner()
        # ops
        self.o_op = array("h")
        self.o_stream = array("h")
        self.o_ident = array("i")
        self.o_t_start = array("d")
        self.o_t_call = array("d")
        self.o_t_end = array("d")
        self.o_ok = array("b")
        self.o_error = array("h")
        self.o_matched = array("q")
        self.o_delivered = array("q")
        self.o_failed = array("q")
        self.o_msg = array("i")
        # multicasts (one row each)
        self.m_id: list[str] = []
        self.m_stream = array("h")
        self.m_filter = array("h")
        self.m_t_start = array("d")
        self.m_t_call = array("d")
        self.m_enum = array("d")
        self.m_t_end = array("d")
        self.m_targeted = array("q")
        self.m_delivered = array("q")
        self.m_failed = array("q")
        self.m_expected = array("q")
        self.m_stale = array("q")
        self.m_wrong = array("q")
        self.m_uncertain = array("q")
        self.m_expected_codes: list[np.ndarray] = []
        self.msg_index: dict[str, int] = {}
        # deliveries as the sender saw them (one row per targeted identity)
        self.d_msg = array("i")
        self.d_ident = array("i")
        self.d_status = array("b")
        self.d_t_done = array("d")
        # receipts at identities' inboxes
        self.r_msg = array("i")
        self.r_ident = array("i")
        self.r_t = array("d")
        self.unknown_receipts = 0
        self._pending_receipts: list[str] = []
        # expirations reported by the coordinator
        self.e_name: list[str] = []
        self.e_deadline = array("d")
        self.e_t = array("d")
        self.e_coord: list[str] = []
        # probes: when a dead identity stopped being returned
        self.p_ident = array("i")
        self.p_deadline = array("d")
        self.p_t_gone = array("d")
        # population samples
        self.s_t = array("d")
        self.s_registered = array("q")
        self.s_alive = array("q")
        self.s_expired = array("q")
        self.agents: set[int] = set()
        # the process (replica) of each op / multicast / expiration row: set by measure.merge only
        self.o_process: array | None = None
        self.m_process: array | None = None
        self.e_process: array | None = None

    # ------------------------------------------------------------------ ops
    def op(
        self,
        op: str,
        stream: str,
        ident: int,
        t_start: float,
        t_call: float,
        t_end: float,
        ok: bool,
        error: str = "",
        matched: int = 0,
        delivered: int = 0,
        failed: int = 0,
        msg: int = -1,
    ) -> None:
        """One operation: scheduled start, actual call, end (all relative seconds)."""
        self.o_op.append(self.ops_names(op))
        self.o_stream.append(self.streams(stream))
        self.o_ident.append(ident)
        self.o_t_start.append(t_start)
        self.o_t_call.append(t_call)
        self.o_t_end.append(t_end)
        self.o_ok.append(ok)
        self.o_error.append(self.errors(error) if error else 0)
        self.o_matched.append(matched)
        self.o_delivered.append(delivered)
        self.o_failed.append(failed)
        self.o_msg.append(msg)

    def multicast(
        self,
        result: Any,
        *,
        stream: str,
        filter_text: str,
        t_start: float,
        origin: float,
        ident_of: dict[str, int],
        audit: Any,
        codes: np.ndarray | None = None,
    ) -> int:
        """A completed multicast: its row, its per-identity outcomes; returns its message index. ``codes``:
        the targets' identity codes in ``result.statuses`` order, if the caller has them (-1 or >= 2**30:
        unknown); else they are looked up in ``ident_of``."""
        idx = len(self.m_id)
        self.m_id.append(result.message_id)
        self.msg_index[result.message_id] = idx
        t_call = result.started_at - origin
        self.m_stream.append(self.streams(stream))
        self.m_filter.append(self.filters(filter_text))
        self.m_t_start.append(t_start)
        self.m_t_call.append(t_call)
        self.m_enum.append(result.enumerate_s)
        self.m_t_end.append(t_call + result.duration_s)
        self.m_targeted.append(result.targeted)
        self.m_delivered.append(result.delivered)
        self.m_failed.append(result.failed)
        self.m_expected.append(audit.expected)
        self.m_stale.append(audit.stale)
        self.m_wrong.append(audit.wrong)
        self.m_uncertain.append(audit.uncertain)
        self.m_expected_codes.append(audit.expected_codes)
        statuses = result.statuses
        n = len(statuses)
        if n:
            lat = result.latencies
            self.d_msg.extend(array("i", [idx]) * n)
            if codes is not None and len(codes) == n:
                self.d_ident.frombytes(np.where(codes >= UNKNOWN_CODE, -1, codes).astype(np.int32).tobytes())
            else:
                self.d_ident.extend(array("i", [ident_of.get(k, -1) for k in statuses]))
            if result.delivered == n:  # the common case, without a lookup per target
                self.d_status.extend(array("b", [STATUS_CODES[DELIVERED]]) * n)
            else:
                self.d_status.extend(
                    array("b", [STATUS_CODES.get(s, len(STATUSES) - 1) for s in statuses.values()]))
            first = next(iter(lat.values()), np.nan)
            if len(lat) in (0, n) and (not lat or countOf(lat.values(), first) == n):
                # none, or one for all (a publish fan-out sent in one batch): no lookup per target
                self.d_t_done.extend(array("d", [t_call + first]) * n)
            else:
                self.d_t_done.extend(array("d", [t_call + lat.get(k, np.nan) for k in statuses]))
        return idx

    def receipt(self, message_id: str, ident: int, t_received: float) -> None:
        """An identity's inbox received ``message_id`` at ``t_received``."""
        idx = self.msg_index.get(message_id)
        if idx is None:  # arrived before its multicast returned: resolved at the end
            self.r_msg.append(-1)
            self.unknown_receipts += 1
            self._pending_receipts.append(message_id)
        else:
            self.r_msg.append(idx)
        self.r_ident.append(ident)
        self.r_t.append(t_received)

    def receipts(self, message_id: str, codes: np.ndarray, t_received: np.ndarray) -> None:
        """Many identities' inboxes received ``message_id`` (times relative to the origin)."""
        n = len(codes)
        if not n:
            return
        idx = self.msg_index.get(message_id)
        if idx is None:
            self.r_msg.extend(array("i", [-1]) * n)
            self.unknown_receipts += n
            self._pending_receipts.extend([message_id] * n)
        else:
            self.r_msg.extend(array("i", [idx]) * n)
        self.r_ident.frombytes(np.asarray(codes, np.int32).tobytes())
        self.r_t.frombytes(np.asarray(t_received, np.float64).tobytes())

    def resolve_receipts(self) -> None:
        """Attach receipts that arrived before their multicast returned to their message."""
        pending = iter(self._pending_receipts)
        for i, m in enumerate(self.r_msg):
            if m == -1:
                self.r_msg[i] = self.msg_index.get(next(pending), -1)
        self._pending_receipts = []

    # ------------------------------------------------------------------ expiry and population
    def expiration(self, name: str, deadline: float, t_detected: float, coordinator: str) -> None:
        """One ExpirationEvent (relative times)."""
        self.e_name.append(name)
        self.e_deadline.append(deadline)
        self.e_t.append(t_detected)
        self.e_coord.append(coordinator)

    def gone(self, ident: int, deadline: float, t_gone: float) -> None:
        """A probe saw a dead identity stop being returned at ``t_gone``."""
        self.p_ident.append(ident)
        self.p_deadline.append(deadline)
        self.p_t_gone.append(t_gone)

    def sample(self, t: float, registered: int, alive: int) -> None:
        """One population sample."""
        self.s_t.append(t)
        self.s_registered.append(registered)
        self.s_alive.append(alive)
        self.s_expired.append(len(self.e_t))


__all__ = ["STATUS_CODES", "UNKNOWN_CODE", "Interner", "Recorder"]
