"""Calibration: fitting the simulator's models to live measurements, and the calibration file format.

The measurements come from :func:`mcastlab.workloads.calibration_load.run_workload` (live via
``mcastlab calibrate``; the same workload runs in sim for round-trip tests). Each operation's latency is
split three ways, because they queue on three different resources:

* **server time** (the registry server's own busy time, from Redis' ``INFO commandstats``) — queued on
  the simulated registry server;
* **client CPU** (:func:`fit_cpu`: the coordinator process's CPU seconds around each phase, fitted by
  least squares as a cost per call plus a cost per item) — queued on the simulated process CPU;
* **the rest** (round trip, kernel, event-loop scheduling) — the ``network`` model, not queued, kept as
  the empirical residual ``latency - server - CPU`` of every sample.

Messaging: the pipeline cost per message from the fan-out slopes (a multicast's duration minus its
query, net of the CPU per message), per-fan-out variability as the ``flush`` residual, delivery from
the agents' receipts.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mcastlab.sim.cpu import CPU_DEFAULTS
from mcastlab.sim.models import fit_lognormal
from mcastlab.sim.spec import REGISTRY_DEFAULTS, load_calibration_sim, resolve_calibration

MAX_SAMPLES = 2000
FORMAT_VERSION = 2  # 2: a "cpu" section (the coordinator process's CPU costs); 1 files still load


def _summary(samples: list[float]) -> dict[str, Any]:
    arr = np.asarray(samples, dtype=float)
    fit = fit_lognormal(arr[arr > 0]) if np.any(arr > 0) else None
    keep = (
        arr if len(arr) <= MAX_SAMPLES else np.random.default_rng(0).choice(arr, MAX_SAMPLES, replace=False)
    )
    return {
        "n": len(arr),
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "lognormal": None if fit is None else {"median": fit.median_s, "sigma": fit.sigma},
        "samples": [round(float(x), 9) for x in keep],
    }


def _empirical(samples: np.ndarray, per_item: float = 0.0) -> dict[str, Any]:
    arr = np.clip(np.asarray(samples, dtype=float), 1e-6, None)
    if len(arr) > MAX_SAMPLES:
        arr = np.random.default_rng(0).choice(arr, MAX_SAMPLES, replace=False)
    d: dict[str, Any] = {"kind": "empirical", "samples": [round(float(x), 9) for x in arr]}
    if per_item:
        d["per_item"] = per_item
    return d


def _lstsq(rows: Sequence[tuple[int, int, float]]) -> tuple[float, float]:
    """Least squares ``cpu = a * calls + b * items`` (a, b >= 0); rows are (calls, items, cpu). Relative
    errors are minimised (each row weighted by 1/cpu): timing noise grows with the time measured, and a
    phase of big queries must not drown the per-call cost a phase of small ones shows."""
    a_mat = np.asarray([[c, i] for c, i, _ in rows], float)
    y = np.asarray([v for _, _, v in rows], float)
    if len(rows) == 1 or np.linalg.matrix_rank(a_mat) < 2:
        calls = float(a_mat[:, 0].sum())
        return max(0.0, float(y.sum()) / calls) if calls else 0.0, 0.0
    w = 1.0 / np.clip(np.abs(y), 1e-12, None)
    (a, b), *_ = np.linalg.lstsq(a_mat * w[:, None], y * w, rcond=None)
    if b < 0:  # no per-item cost to see: all of it per call
        return max(0.0, float(y.sum() / a_mat[:, 0].sum())), 0.0
    if a < 0:
        return 0.0, max(0.0, float(y.sum() / a_mat[:, 1].sum()))
    return float(a), float(b)


def fit_cpu(samples: Sequence[tuple[str, int, int, float]], *, per_op: float | None = None) -> dict[str, Any]:
    """The ``cpu`` section from ``(kind, calls, items, cpu_seconds)`` samples of the calibration workload.

    register/heartbeat give a cost per call; query (enumerate) and ids (count by an exact filter) a cost
    per call and per item from two sizes; a bare publish multicast is ids + per_fanout + per_message per
    target; the same multicast received by in-process agents adds per_delivery per target. ``per_op``
    (the load generator's cost per operation) is measured apart. A pipelined batch (the cohort engine's,
    which live runs do not use) keeps the defaults, as does whatever a file lacks.
    """
    by: dict[str, list[tuple[int, int, float]]] = {}
    for kind, calls, items, cpu in samples:
        by.setdefault(kind, []).append((int(calls), int(items), float(cpu)))
    out: dict[str, Any] = {"cores": 1, "call": {}, "per_item": {}}
    for kind, op in (("register", "register"), ("heartbeat", "heartbeat"), ("query", "query"),
                     ("ids", "ids")):
        if kind in by:
            a, b = _lstsq(by[kind])
            out["call"][op] = a
            if b:
                out["per_item"][op] = b
    out["call"]["default"] = out["call"].get("heartbeat", CPU_DEFAULTS["call"]["default"])
    out["call"]["get"] = out["call"]["default"]
    if "count" not in out["per_item"] and "ids" in out["per_item"]:
        out["per_item"]["count"] = out["per_item"]["ids"]
        out["call"]["count"] = out["call"].get("ids", out["call"]["default"])
    call_ids = out["call"].get("ids", CPU_DEFAULTS["call"]["ids"])
    item_ids = out["per_item"].get("ids", CPU_DEFAULTS["per_item"]["ids"])
    if "multicast" in by:
        a, b = _lstsq(by["multicast"])
        out["per_fanout"] = max(0.0, a - call_ids)
        out["per_message"] = max(0.0, b - item_ids)
    if "multicast_agents" in by and "multicast" in by:
        a, b = _lstsq(by["multicast"])
        extra = [(cpu - a * c - b * i) / i for c, i, cpu in by["multicast_agents"] if i]
        if extra:
            out["per_delivery"] = max(0.0, float(np.mean(extra)))
    if per_op is not None:
        out["per_op"] = per_op
    return out


def _cpu_cost(cpu: Mapping[str, Any], op: str, items: int = 0) -> float:
    """Client CPU seconds of one registry call ``op`` with ``items`` items, by the fitted costs."""
    call = {**CPU_DEFAULTS["call"], **cpu.get("call", {})}
    item = {**CPU_DEFAULTS["per_item"], **cpu.get("per_item", {})}
    return float(call.get(op, call["default"])) + float(item.get(op, 0.0)) * items


def _line(n_small: int, small: float, n: int, big: float, extras: Mapping[str, Any],
          wide: float | None) -> tuple[float, float]:
    """A registry server's fixed and per-item time of one read, from its times at two answer sizes.

    The per-item slope comes from the wide phase (``extras["wide_n"]`` rows) when it was measured: a
    server's cost per row grows with the answer (at 10 and 100 rows the rows sit in its caches; measured
    on Redis here, 0.8-1.05 µs per row at 1,000-8,000 rows against a 0.62 µs slope between 10 and 100),
    and a load test's answers are thousands of rows."""
    n_wide = int(extras.get("wide_n", 0))
    if wide is not None and n_wide > n_small:
        item = max(0.0, (wide - small) / (n_wide - n_small))
        return max(1e-7, small - item * n_small), item
    item = max(0.0, (big - small) / (n - n_small))
    return max(1e-7, big - item * n), item


def fit_sim(
    lat: Mapping[str, list[float]], extras: Mapping[str, Any], *, n: int, n_small: int, batch: int,
    cpu: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The SimSpec ``sim`` section (registry, messaging and cpu models) from live measurements; the
    network residuals are what remains of each latency after server time and client CPU."""
    cpu = dict(cpu) if cpu is not None else fit_cpu(extras.get("cpu", []))
    med = {k: float(np.median(v)) for k, v in lat.items()}
    srv: dict[str, float] = {k: float(v) for k, v in extras.get("server_s", {}).items()}
    svc_reg = srv.get("register", 5e-6)
    svc_hb = srv.get("heartbeat", svc_reg)
    svc_big, svc_small = srv.get(f"enumerate_{n}", 1e-5), srv.get(f"enumerate_{n_small}", 1e-5)
    ids_big, ids_small = srv.get(f"count_{n}", svc_big / 4), srv.get(f"count_{n_small}", svc_small / 4)
    svc_base, svc_item = _line(n_small, svc_small, n, svc_big, extras, srv.get("enumerate_wide"))
    ids_base, ids_item = _line(n_small, ids_small, n, ids_big, extras, srv.get("count_wide"))
    q_big, q_small = _cpu_cost(cpu, "query", n), _cpu_cost(cpu, "query", n_small)
    net_big = med[f"enumerate_{n}"] - svc_big - q_big
    net_small = med[f"enumerate_{n_small}"] - svc_small - q_small
    net_item = max(0.0, (net_big - net_small) / (n - n_small))
    enum_big = np.asarray(lat[f"enumerate_{n}"])
    count_big = np.asarray(lat.get(f"count_{n}", lat[f"enumerate_{n}"]))
    hb = np.asarray(lat["heartbeat"]) - svc_hb - _cpu_cost(cpu, "heartbeat")
    reg = np.asarray(lat["register"]) - svc_reg - _cpu_cost(cpu, "register")
    # a batch of `batch` concurrent registers (+ as many unregisters) took this long: per-item cost
    svc_batch_item = float(srv.get("register_batch", svc_reg))
    cpu_batch_item = float(cpu.get("per_item", {}).get("batch", CPU_DEFAULTS["per_item"]["batch"]))
    t_batch = med["register_batch"]
    net_batch_item = max(0.0, (t_batch - med["register"]) / batch - svc_batch_item - cpu_batch_item)
    registry = {
        "service": {
            "default": {"kind": "constant", "value": svc_hb},
            "register": {"kind": "constant", "value": svc_reg},
            "heartbeat": {"kind": "constant", "value": svc_hb},
            "query": {"kind": "constant", "value": svc_base, "per_item": svc_item},
            "ids": {"kind": "constant", "value": ids_base, "per_item": ids_item},
            "count": {"kind": "constant", "value": ids_base, "per_item": ids_item},
            "claim": REGISTRY_DEFAULTS["service"]["claim"],
            "batch": {"kind": "constant", "value": svc_reg, "per_item": svc_batch_item},
        },
        "network": {
            "default": _empirical(hb),
            "register": _empirical(reg),
            "heartbeat": _empirical(hb),
            "query": _empirical(enum_big - svc_big - q_big - net_item * n, net_item),
            "ids": _empirical(count_big - ids_big - _cpu_cost(cpu, "ids", n)),
            "count": _empirical(count_big - ids_big - _cpu_cost(cpu, "ids", n)),
            "batch": _empirical(hb, net_batch_item),
        },
    }
    # multicast = its query + the fan-out; the coordinator reports both, so fit the fan-out alone
    fan = {k: np.asarray(v, dtype=float) for k, v in extras.items() if str(k).startswith("fanout_")}
    fmed = {k: float(np.median(v)) for k, v in fan.items()}
    c_msg = float(cpu.get("per_message", CPU_DEFAULTS["per_message"]))
    c_fan = float(cpu.get("per_fanout", CPU_DEFAULTS["per_fanout"]))
    c_del = float(cpu.get("per_delivery", CPU_DEFAULTS["per_delivery"]))
    # With this process's agents listening, as most scenarios run, a publish fan-out ends when the server
    # has passed on every message and the process has read its agents' receipts (the flush reply comes
    # behind them): its slope per message is the client's framing plus the slower of the server's work and
    # the agent's (per_delivery, modelled apart). So the slope bounds the server's share from below only
    # when the server is the slower; the fan-out with nobody listening bounds it in any case, and when it
    # was measured it is the server's share: the other bound is a small difference of two large, noisy
    # figures (measured here: 30.4 µs a message with agents, less 23.0 of their CPU, gave 6.6 µs a message
    # where the bare fan-out costs 2.7 in all), which made the simulated server the bottleneck.
    def slope(key: str) -> float:
        return (fmed[f"{key}_{n}"] - fmed[f"{key}_{n_small}"]) / (n - n_small)

    pub = "fanout_publish"
    if f"fanout_bare_{n}" in fmed:
        c_pub = max(1e-8, slope("fanout_bare") - c_msg)
    else:
        c_pub = max(1e-8, slope(pub) - c_msg - c_del)
    c_req = max(1e-7, slope("fanout_ack") - c_msg - c_del)
    flush = fan[f"{pub}_{n}"] - (max(c_pub, c_del) + c_msg) * n - c_fan
    deliveries = np.asarray(extras.get(f"delivery_publish_{n_small}") or [6.6e-4])
    # a receipt is recorded after the messages before it went through the server and were read by this
    # process (per_delivery each, modelled apart): on average (n + 1) / 2 of each ahead of it
    delivery = deliveries - (c_pub + c_del) * (n_small + 1) / 2
    # an ack fan-out ends with its slowest send, max_i((i+1) c_req + delivery_i) + ack: bootstrap that max
    draws = np.random.default_rng(0).choice(np.clip(delivery, 1e-6, None), (400, n))
    slowest = float(np.median(np.max(draws + (c_req + c_msg) * np.arange(1, n + 1), axis=1)))
    ack = max(1e-6, fmed[f"fanout_ack_{n}"] - slowest)
    messaging = {
        "per_message": {"kind": "constant", "value": c_pub},
        "per_request": {"kind": "constant", "value": c_req},
        "flush": _empirical(flush),
        "delivery": _empirical(delivery),
        "ack": {"kind": "constant", "value": ack},
    }
    return {"registry": registry, "messaging": messaging, "cpu": {**cpu, **_host(extras.get("host"))}}


def _host(host: Mapping[str, float] | None) -> dict[str, Any]:
    """The ``cpu`` keys of the simulated host (``mcastlab.sim.host``) from what ``mcastlab.calibrate_host``
    measured: none for files measured without it (each process then has its own cores)."""
    if not host or not host.get("host_cores"):
        return {}
    out: dict[str, Any] = {"host_cores": int(host["host_cores"])}
    if host.get("redis_cmd_s", 0) > 0:
        out["registry_cpu"] = max(0.1, host["redis_cpu_s"] / host["redis_cmd_s"])
    if host.get("nats_cpu_per_msg", 0) > 0:
        out["messaging_cpu"] = float(host["nats_cpu_per_msg"])
    return out


def machine_info() -> dict[str, Any]:
    """Where the calibration was measured."""
    import os

    return {
        "node": platform.node(),
        "system": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def build_calibration(
    lat: Mapping[str, list[float]],
    extras: Mapping[str, Any],
    *,
    params: Mapping[str, Any],
    servers: Mapping[str, str] | None = None,
    cpu: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The calibration file's content: sim section, per-operation summaries, machine and parameters."""
    import datetime as _dt

    n, n_small, batch = params["n"], params["n_small"], params["batch"]
    return {
        "version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "servers": dict(servers or {})},
        "params": dict(params),
        "sim": fit_sim(lat, extras, n=n, n_small=n_small, batch=batch, cpu=cpu),
        "server_s_per_op": dict(extras.get("server_s", {})),
        "measurements": {k: _summary(v) for k, v in sorted(lat.items())},
    }


def save_calibration(data: Mapping[str, Any], path: str | Path) -> Path:
    """Write a calibration file (JSON)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return p


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read a whole calibration file (``default`` = the committed one)."""
    load_calibration_sim(path)  # validates and gives the ConfigError messages
    return json.loads(resolve_calibration(path).read_text())  # type: ignore[no-any-return]


__all__ = [
    "build_calibration",
    "fit_cpu",
    "fit_sim",
    "load_calibration",
    "machine_info",
    "save_calibration",
]
