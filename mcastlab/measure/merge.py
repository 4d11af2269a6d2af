"""One Recorder from the Recorders of a replicated run's processes, with a ``process`` per row.

Each replica recorded its own operations, multicasts, deliveries, receipts (its agents saw messages that
any replica sent), expirations and probes, with identity codes, interned names and message indices of its
own. :func:`merge_recorders` maps codes into the merged truth's (``codes[r]``), re-interns names, shifts
message indices, resolves receipts by message id across replicas, and takes each multicast's targeting
audit and each population sample's live count from the merged truth's replay (a replica's own truth saw
only its share of the identities).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from mcastlab.errors import RuntimeMisuseError
from mcastlab.measure.recorder import Interner, Recorder


def _table(src: Interner, dst: Interner) -> np.ndarray:
    return np.asarray([dst(name) for name in src.names], np.int64)


def _remap(values: array, table: np.ndarray, dtype: str) -> array:
    """``table[v]`` for each ``v >= 0`` of ``values`` (negative values stay -1)."""
    v = np.array(values, dtype=np.int64)
    ok = v >= 0
    out = np.full(len(v), -1, np.int64)
    out[ok] = table[v[ok]]
    return array(dtype, out.astype(np.dtype(array(dtype).typecode)).tobytes())


def merge_recorders(recs: Sequence[Recorder], codes: Sequence[np.ndarray], audits: Sequence[Sequence[Any]],
                    alive: Sequence[Sequence[int]]) -> Recorder:
    """The replicas' recorders as one (see the module docstring); ``recs[r]`` is process ``r``."""
    out = Recorder()
    out.o_process, out.m_process, out.e_process = array("h"), array("h"), array("h")
    pending: list[str] = []
    for r, rec in enumerate(recs):
        cmap = codes[r]
        mo = len(out.m_id)
        op_t = _table(rec.ops_names, out.ops_names)
        st_t = _table(rec.streams, out.streams)
        er_t = _table(rec.errors, out.errors)
        fl_t = _table(rec.filters, out.filters)
        shift = np.arange(len(rec.m_id), dtype=np.int64) + mo
        # ops
        n_ops = len(rec.o_op)
        out.o_op.extend(_remap(rec.o_op, op_t, "h"))
        out.o_stream.extend(_remap(rec.o_stream, st_t, "h"))
        out.o_ident.extend(_remap(rec.o_ident, cmap, "i"))
        out.o_error.extend(_remap(rec.o_error, er_t, "h"))
        out.o_msg.extend(_remap(rec.o_msg, shift, "i"))
        for name in ("o_t_start", "o_t_call", "o_t_end", "o_ok", "o_matched", "o_delivered", "o_failed"):
            getattr(out, name).extend(getattr(rec, name))
        out.o_process.extend(array("h", [r]) * n_ops)
        # multicasts, with the merged truth's audits
        own = audits[r]
        if len(own) != len(rec.m_id):
            raise RuntimeMisuseError(f"process {r}: {len(rec.m_id)} multicasts, {len(own)} audits replayed")
        for k, mid in enumerate(rec.m_id):
            out.msg_index[mid] = mo + k
        out.m_id.extend(rec.m_id)
        out.m_stream.extend(_remap(rec.m_stream, st_t, "h"))
        out.m_filter.extend(_remap(rec.m_filter, fl_t, "h"))
        for name in ("m_t_start", "m_t_call", "m_enum", "m_t_end", "m_targeted", "m_delivered", "m_failed"):
            getattr(out, name).extend(getattr(rec, name))
        out.m_expected.extend(a.expected for a in own)
        out.m_stale.extend(a.stale for a in own)
        out.m_wrong.extend(a.wrong for a in own)
        out.m_uncertain.extend(a.uncertain for a in own)
        out.m_expected_codes.extend(a.expected_codes for a in own)
        out.m_process.extend(array("h", [r]) * len(rec.m_id))
        # deliveries (sender side) and receipts (inbox side: any process's messages)
        out.d_msg.extend(_remap(rec.d_msg, shift, "i"))
        out.d_ident.extend(_remap(rec.d_ident, cmap, "i"))
        out.d_status.extend(rec.d_status)
        out.d_t_done.extend(rec.d_t_done)
        waiting = iter(rec._pending_receipts)
        for m in rec.r_msg:
            if m >= 0:
                out.r_msg.append(mo + m)
            else:
                out.r_msg.append(-1)
                pending.append(next(waiting))
        out.r_ident.extend(_remap(rec.r_ident, cmap, "i"))
        out.r_t.extend(rec.r_t)
        # expirations, probes, agents
        out.e_name.extend(rec.e_name)
        out.e_deadline.extend(rec.e_deadline)
        out.e_t.extend(rec.e_t)
        out.e_coord.extend(rec.e_coord)
        out.e_process.extend(array("h", [r]) * len(rec.e_t))
        out.p_ident.extend(_remap(rec.p_ident, cmap, "i"))
        out.p_deadline.extend(rec.p_deadline)
        out.p_t_gone.extend(rec.p_t_gone)
        out.agents.update(int(cmap[c]) for c in rec.agents if 0 <= c < len(cmap))
    out._pending_receipts = pending
    out.unknown_receipts = len(pending)
    # population: samples come from one process; the live count from the merged truth, the expired count
    # from every process's expirations
    exp_t = np.sort(np.frombuffer(out.e_t, np.float64)) if len(out.e_t) else np.empty(0)
    for r, rec in enumerate(recs):
        if len(rec.s_t) != len(alive[r]):
            raise RuntimeMisuseError(f"process {r}: {len(rec.s_t)} population samples, {len(alive[r])} "
                                     "replayed")
        out.s_t.extend(rec.s_t)
        out.s_registered.extend(rec.s_registered)
        out.s_alive.extend(alive[r])
        out.s_expired.extend(int(np.searchsorted(exp_t, t, side="right")) for t in rec.s_t)
    return out


__all__ = ["merge_recorders"]
