"""The tidy frames every run produces (docs/architecture.md, "Measurement"), their columns and dtypes.

Frames (one row per event; all times in seconds since the run's origin, float64):

* ``ops``: run, scenario, mode, backend, op, t_start, latency_s, ok, error, matched, delivered, failed
  + extras: stream (which workload stream issued it), identity, t_call (when the call really started),
  lag_s (t_call - t_start: generator lag), service_s (end - t_call), message_id, warmup.
  ``t_start`` is the *scheduled* start and ``latency_s`` runs from it, so a slow server cannot hide its
  own delay by delaying the next request (no coordinated omission).
* ``deliveries``: run, message_id, identity, t_sent, t_received, latency_s, status
  + extras: observed (t_received is a receipt at the identity's inbox, not the sender's completion),
  receipts (how many times the inbox got it). t_sent is the multicast's scheduled start.
* ``expirations``: run, identity, deadline, t_detected, lag_s
  + extras: coordinator, t_gone / gone_lag_s (when a probe saw the identity stop being returned).
* ``population``: run, t, registered + extras: alive (ground truth), expired (cumulative).
* ``targets``: metric, target, achieved, passed + extras: comparison, unit, n (samples behind the
  figure), source, run, verdict (pass / fail / insufficient / no data), min_samples (needed to judge).
* ``multicasts`` (extra frame, one row per multicast): run, message_id, stream, filter, t_start, t_call,
  enumerate_s, targeted, delivered, failed, expected, stale, wrong, missed, duplicated, uncertain,
  received, makespan_s — the targeting audit and makespan (time from the scheduled start to the last
  recipient's receipt).
* ``timeseries`` (extra frame, one row per window of ``measure.window`` seconds and operation): run, t,
  window, op, offered_rate, achieved_rate, p50_s, p99_s, n, errors, deliveries, population — see
  :mod:`mcastlab.measure.timeseries`.

``ops``, ``multicasts`` and ``expirations`` also have ``process``: which coordinator replica issued the
operation, sent the multicast or claimed the expiry (0 in a run in one process; ``mcastlab run
--processes N`` merges N processes' frames into one run, see :mod:`mcastlab.workloads.replicas`).

String columns are pandas ``string``, counts ``int64``, flags ``bool`` (``passed`` is nullable
``boolean``: n/a when nothing was measured).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mcastlab.backends.base import STATUSES

S, F, I, B = "string", "float64", "int64", "bool"  # noqa: E741

SCHEMAS: dict[str, dict[str, str]] = {
    "ops": {
        "run": S,
        "scenario": S,
        "mode": S,
        "backend": S,
        "op": S,
        "t_start": F,
        "latency_s": F,
        "ok": B,
        "error": S,
        "matched": I,
        "delivered": I,
        "failed": I,
        "stream": S,
        "identity": S,
        "t_call": F,
        "lag_s": F,
        "service_s": F,
        "message_id": S,
        "warmup": B,
        "process": I,
    },
    "deliveries": {
        "run": S,
        "message_id": S,
        "identity": S,
        "t_sent": F,
        "t_received": F,
        "latency_s": F,
        "status": S,
        "observed": B,
        "receipts": I,
    },
    "expirations": {
        "run": S,
        "identity": S,
        "deadline": F,
        "t_detected": F,
        "lag_s": F,
        "coordinator": S,
        "t_gone": F,
        "gone_lag_s": F,
        "process": I,
    },
    "population": {"run": S, "t": F, "registered": I, "alive": I, "expired": I},
    "targets": {
        "metric": S,
        "target": F,
        "achieved": F,
        "passed": "boolean",
        "comparison": S,
        "unit": S,
        "n": I,
        "source": S,
        "run": S,
        "verdict": S,
        "min_samples": I,
    },
    "multicasts": {
        "run": S,
        "message_id": S,
        "stream": S,
        "filter": S,
        "t_start": F,
        "t_call": F,
        "enumerate_s": F,
        "targeted": I,
        "delivered": I,
        "failed": I,
        "expected": I,
        "stale": I,
        "wrong": I,
        "missed": I,
        "duplicated": I,
        "uncertain": I,
        "received": I,
        "makespan_s": F,
        "process": I,
    },
    "timeseries": {
        "run": S,
        "t": F,
        "window": F,
        "op": S,
        "offered_rate": F,
        "achieved_rate": F,
        "p50_s": F,
        "p99_s": F,
        "n": I,
        "errors": I,
        "deliveries": I,
        "population": I,
    },
}
FRAMES = tuple(SCHEMAS)


def conform(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Return ``df`` with exactly the documented columns of frame ``name``, in order, with their dtypes."""
    schema = SCHEMAS[name]
    out = {}
    n = len(df)
    for col, dtype in schema.items():
        if col in df.columns:
            values = df[col]
        else:
            values = pd.Series([pd.NA if dtype in (S, "boolean") else 0] * n, dtype="object")
        if dtype == S:
            values = values.astype("string")
        elif dtype == B:
            values = values.fillna(False).astype(bool) if values.dtype == object else values.astype(bool)
        else:
            values = values.astype(dtype)
        out[col] = values.reset_index(drop=True)
    return pd.DataFrame(out, columns=list(schema))


def empty(name: str) -> pd.DataFrame:
    """An empty frame with the documented columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in SCHEMAS[name].items()})


def _strings(table: list[str] | np.ndarray, codes: Any) -> pd.arrays.StringArray:
    """Decode integer codes through ``table`` (code -1 -> NA) into a pandas string array."""
    codes = np.asarray(codes, dtype=np.int64)
    arr = np.asarray(table, dtype=object)
    out = np.empty(len(codes), dtype=object)
    ok = codes >= 0
    out[ok] = arr[codes[ok]]
    out[~ok] = None
    return pd.array(out, dtype="string")


def _a(col: Any, dtype: Any = np.float64) -> np.ndarray:
    return np.frombuffer(col, dtype=dtype) if len(col) else np.empty(0, dtype)


def build(
    rec: Any, names: list[str], *, run: str, scenario: str, mode: str, backend: str, warmup: float
) -> dict[str, pd.DataFrame]:
    """All frames from a :class:`~mcastlab.measure.recorder.Recorder` and the identity name table."""
    rec.resolve_receipts()
    ident_names = np.asarray([*names, ""], dtype=object)  # code -1 indexes the trailing ""
    frames: dict[str, pd.DataFrame] = {}

    t_start, t_call, t_end = _a(rec.o_t_start), _a(rec.o_t_call), _a(rec.o_t_end)
    msg = _a(rec.o_msg, np.int32)
    ident = _a(rec.o_ident, np.int32)
    ops = pd.DataFrame(
        {
            "op": _strings(rec.ops_names.names, _a(rec.o_op, np.int16)),
            "t_start": t_start,
            "latency_s": t_end - t_start,
            "ok": _a(rec.o_ok, np.int8).astype(bool),
            "error": _strings(rec.errors.names, _a(rec.o_error, np.int16)),
            "matched": _a(rec.o_matched, np.int64),
            "delivered": _a(rec.o_delivered, np.int64),
            "failed": _a(rec.o_failed, np.int64),
            "stream": _strings(rec.streams.names, _a(rec.o_stream, np.int16)),
            "identity": _strings(ident_names, np.where(ident >= 0, ident, -1)),
            "t_call": t_call,
            "lag_s": t_call - t_start,
            "service_s": t_end - t_call,
            "message_id": _strings([*rec.m_id, ""], np.where(msg >= 0, msg, -1)),
            "warmup": t_start < warmup,
            "process": _process(rec.o_process, len(t_start)),
        }
    )
    ops.loc[ops["identity"] == "", "identity"] = pd.NA
    ops.loc[ops["message_id"] == "", "message_id"] = pd.NA
    frames["ops"] = ops.assign(run=run, scenario=scenario, mode=mode, backend=backend)

    # deliveries: sender-side outcomes joined with inbox receipts
    d_msg, d_ident = _a(rec.d_msg, np.int32).astype(np.int64), _a(rec.d_ident, np.int32).astype(np.int64)
    r_msg, r_ident = _a(rec.r_msg, np.int32).astype(np.int64), _a(rec.r_ident, np.int32).astype(np.int64)
    r_t = _a(rec.r_t)
    width = max(len(names), 1) + 1
    d_key = d_msg * width + (d_ident + 1)
    keep = r_msg >= 0
    r_key = r_msg[keep] * width + (r_ident[keep] + 1)
    r_t = r_t[keep]
    order = np.lexsort((r_t, r_key))
    r_key, r_t = r_key[order], r_t[order]
    uniq, first, counts = np.unique(r_key, return_index=True, return_counts=True)
    if len(uniq):
        pos = np.minimum(np.searchsorted(uniq, d_key), len(uniq) - 1)
        hit = uniq[pos] == d_key
        t_first = np.where(hit, r_t[first[pos]], np.nan)
        n_recv = np.where(hit, counts[pos], 0).astype(np.int64)
    else:
        hit = np.zeros(len(d_key), bool)
        t_first = np.full(len(d_key), np.nan)
        n_recv = np.zeros(len(d_key), np.int64)
    status_codes = _a(rec.d_status, np.int8)
    delivered = status_codes == 0
    m_t_start = _a(rec.m_t_start)
    t_sent = m_t_start[d_msg] if len(d_msg) else np.empty(0)
    t_done = _a(rec.d_t_done)
    t_recv = np.where(hit, t_first, np.where(delivered, t_done, np.nan))
    frames["deliveries"] = pd.DataFrame(
        {
            "run": run,
            "message_id": _strings(rec.m_id, d_msg),
            "identity": _strings(ident_names, d_ident),
            "t_sent": t_sent,
            "t_received": t_recv,
            "latency_s": t_recv - t_sent,
            "status": _strings(list(STATUSES), status_codes),
            "observed": hit,
            "receipts": n_recv,
        }
    )

    frames["multicasts"] = _multicasts(
        rec, run, d_msg, d_ident, delivered, hit, t_recv, n_recv, r_ident, width
    )
    frames["expirations"] = _expirations(rec, names, run)
    frames["population"] = pd.DataFrame(
        {
            "run": run,
            "t": _a(rec.s_t),
            "registered": _a(rec.s_registered, np.int64),
            "alive": _a(rec.s_alive, np.int64),
            "expired": _a(rec.s_expired, np.int64),
        }
    )
    frames["timeseries"] = empty("timeseries")  # built by measure.timeseries once the run's end is known
    return {k: conform(v, k) for k, v in frames.items()}


def _process(column: Any, n: int) -> np.ndarray:
    """The process (replica) of each row: 0 for every row of a run in one process."""
    return np.zeros(n, np.int64) if column is None else np.asarray(column, np.int64)


def _multicasts(
    rec: Any,
    run: str,
    d_msg: np.ndarray,
    d_ident: np.ndarray,
    delivered: np.ndarray,
    hit: np.ndarray,
    t_recv: np.ndarray,
    n_recv: np.ndarray,
    r_ident: np.ndarray,
    width: int,
) -> pd.DataFrame:
    n = len(rec.m_id)
    agents = np.zeros(width, bool)
    if rec.agents:
        agents[np.fromiter(rec.agents, np.int64) + 1] = True
    # a recipient counts as reached if the sender says delivered and, where an agent listens, it received
    reached = delivered & (hit | ~agents[d_ident + 1])
    missed = np.zeros(n, np.int64)
    if n:
        exp_msg = np.concatenate(
            [np.full(len(c), i, np.int64) for i, c in enumerate(rec.m_expected_codes)]
            or [np.empty(0, np.int64)]
        )
        exp_codes = np.concatenate(rec.m_expected_codes or [np.empty(0, np.int32)]).astype(np.int64)
        exp_key = exp_msg * width + exp_codes + 1
        ok_key = (d_msg * width + d_ident + 1)[reached]
        lost = ~np.isin(exp_key, ok_key)
        missed = np.bincount(exp_msg[lost], minlength=n).astype(np.int64)
    dup = np.bincount(d_msg[n_recv > 1], minlength=n).astype(np.int64) if n else np.empty(0, np.int64)
    recv = np.bincount(d_msg[hit], minlength=n).astype(np.int64) if n else np.empty(0, np.int64)
    last = np.full(n, np.nan)
    if len(d_msg):
        ok = ~np.isnan(t_recv)
        if ok.any():
            s = pd.Series(t_recv[ok]).groupby(d_msg[ok]).max()
            last[s.index.to_numpy()] = s.to_numpy()
    t_start = _a(rec.m_t_start)
    return pd.DataFrame(
        {
            "run": run,
            "message_id": pd.array(rec.m_id, dtype="string"),
            "stream": _strings(rec.streams.names, _a(rec.m_stream, np.int16)),
            "filter": _strings(rec.filters.names, _a(rec.m_filter, np.int16)),
            "t_start": t_start,
            "t_call": _a(rec.m_t_call),
            "enumerate_s": _a(rec.m_enum),
            "targeted": _a(rec.m_targeted, np.int64),
            "delivered": _a(rec.m_delivered, np.int64),
            "failed": _a(rec.m_failed, np.int64),
            "expected": _a(rec.m_expected, np.int64),
            "stale": _a(rec.m_stale, np.int64),
            "wrong": _a(rec.m_wrong, np.int64),
            "missed": missed,
            "duplicated": dup,
            "uncertain": _a(rec.m_uncertain, np.int64),
            "received": recv,
            "makespan_s": last - t_start,
            "process": _process(rec.m_process, n),
        }
    )


def _expirations(rec: Any, names: list[str], run: str) -> pd.DataFrame:
    exp = pd.DataFrame(
        {
            "identity": pd.array(rec.e_name, dtype="string"),
            "deadline": _a(rec.e_deadline),
            "t_detected": _a(rec.e_t),
            "coordinator": pd.array(rec.e_coord, dtype="string"),
            "process": _process(rec.e_process, len(rec.e_t)),
        }
    )
    exp["lag_s"] = exp["t_detected"] - exp["deadline"]
    if len(rec.p_ident):
        probes = pd.DataFrame(
            {
                "identity": pd.array(
                    np.asarray(names, dtype=object)[_a(rec.p_ident, np.int32)], dtype="string"
                ),
                "deadline": _a(rec.p_deadline),
                "t_gone": _a(rec.p_t_gone),
            }
        )
        probes = probes.drop_duplicates(["identity", "deadline"])
        exp = exp.merge(probes, on=["identity", "deadline"], how="left")
    else:
        exp["t_gone"] = np.nan
    exp["gone_lag_s"] = exp["t_gone"] - exp["deadline"]
    exp["run"] = run
    return exp.sort_values(["t_detected", "identity"], kind="stable").reset_index(drop=True)


__all__ = ["FRAMES", "SCHEMAS", "build", "conform", "empty"]
