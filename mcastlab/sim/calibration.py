"""Calibration: the measurement workload (runs live or in sim), fitting sim models, and the file format.

The workload is ordinary coordinator code, so the same function measures live servers (asyncio) and
the simulation (SimPy): enumerate and multicast (publish and ack, every identity's agent listening) at two
population sizes, register and heartbeat singly, register a batch concurrently. Enumerate and multicast
use no filter (every live identity), so each backend's full read path is what is measured.
:func:`fit_sim` turns live samples into a SimSpec ``sim`` section: server service times from Redis'
own ``INFO commandstats``, network/client time as empirical residuals, per-item costs from the two
sizes, the messaging pipeline cost per message from the fan-out slopes (a multicast's duration minus
its query, as the coordinator reports), and per-fan-out variability as the ``flush`` residual.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mcastlab.sim.models import fit_lognormal
from mcastlab.sim.spec import REGISTRY_DEFAULTS, load_calibration_sim, resolve_calibration
from mcastlab.workloads.agents import AgentPool, DeliveryLog

MAX_SAMPLES = 2000
FORMAT_VERSION = 1


async def run_workload(
    coord: Any, *, n: int, n_small: int, reps: int, batch: int, seed: int, server_usec: Any = None
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Measure each operation; return ``(latencies by label, extras)``; works under any runtime.

    ``server_usec`` (optional, sync callable) returns the registry server's cumulative busy
    microseconds, so extras get the server time per operation of each phase.
    """
    rt = coord.runtime
    rng = np.random.default_rng(seed)
    lat: dict[str, list[float]] = {}
    extras: dict[str, Any] = {"server_s": {}}

    async def timed(label: str, aw: Any) -> Any:
        t0 = rt.now()
        out = await aw
        lat.setdefault(label, []).append(rt.now() - t0)
        return out

    def server_mark() -> float | None:
        return None if server_usec is None else float(server_usec())

    def server_done(label: str, mark: float | None, ops: int) -> None:
        if mark is not None and ops:
            extras["server_s"][label] = (float(server_usec()) - mark) / 1e6 / ops

    names = [f"id-{i:05d}" for i in range(n)]
    pool = AgentPool(coord, DeliveryLog())
    for phase, size in enumerate((n_small, n)):
        first = n_small if phase else 0
        mark = server_mark()
        for name in names[first:size]:  # grow the population to `size`, everyone listening
            await timed("register", coord.register(name, {"status": "online", "phase": phase}))
        server_done(f"register_{phase}", mark, size - first)
        pool.start(names[first:size], "device")
        await rt.sleep(0.5)
        mark = server_mark()
        for _ in range(reps):  # no filter: every live identity (the same in every backend)
            await timed(f"enumerate_{size}", coord.enumerate())
        server_done(f"enumerate_{size}", mark, reps)
        for mode in ("publish", "ack"):
            before = len(pool.log)
            fan = extras.setdefault(f"fanout_{mode}_{size}", [])
            for _ in range(reps):
                res = await timed(f"multicast_{mode}_{size}", coord.multicast(None, b"cal", mode=mode))
                fan.append(res.duration_s - res.enumerate_s)
                if res.delivered != size:
                    extras["undelivered"] = extras.get("undelivered", 0) + size - res.delivered
            await rt.sleep(0.05)
            extras[f"delivery_{mode}_{size}"] = pool.log.latency_s[before:].tolist()
    pool.stop()
    await rt.sleep(0.05)
    mark = server_mark()
    for k in rng.integers(0, n, max(0, reps - n)).tolist():  # re-register (upsert) to reach `reps` samples
        await timed("register", coord.register(names[k], {"status": "online", "phase": 2}))
    server_done("register_2", mark, max(0, reps - n))
    regs = [extras["server_s"].pop(f"register_{p}", None) for p in range(3)]
    weights = [n_small, n - n_small, max(0, reps - n)]
    known = [(r, w) for r, w in zip(regs, weights, strict=True) if r is not None and w]
    if known:
        extras["server_s"]["register"] = sum(r * w for r, w in known) / sum(w for _, w in known)
    mark = server_mark()
    for k in rng.integers(0, n, reps).tolist():
        await timed("heartbeat", coord.heartbeat(names[k]))
    server_done("heartbeat", mark, reps)
    mark = server_mark()
    for r in range(max(3, reps // 50)):
        extra = [f"batch-{r}-{i:05d}" for i in range(batch)]
        await timed("register_batch", rt.gather(*[coord.register(x, {"grp": "batch"}) for x in extra]))
        await rt.gather(*[coord.unregister(x) for x in extra])
    server_done("register_batch", mark, len(lat["register_batch"]) * batch * 2)
    return lat, extras


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


def fit_sim(
    lat: Mapping[str, list[float]], extras: Mapping[str, Any], *, n: int, n_small: int, batch: int
) -> dict[str, Any]:
    """The SimSpec ``sim`` section (registry + messaging models) from live measurements."""
    med = {k: float(np.median(v)) for k, v in lat.items()}
    srv: dict[str, float] = {k: float(v) for k, v in extras.get("server_s", {}).items()}
    svc_reg = srv.get("register", 5e-6)
    svc_hb = srv.get("heartbeat", svc_reg)
    svc_big, svc_small = srv.get(f"enumerate_{n}", 1e-5), srv.get(f"enumerate_{n_small}", 1e-5)
    svc_item = max(0.0, (svc_big - svc_small) / (n - n_small))
    svc_base = max(1e-7, svc_big - svc_item * n)
    net_big = med[f"enumerate_{n}"] - svc_big
    net_small = med[f"enumerate_{n_small}"] - svc_small
    net_item = max(0.0, (net_big - net_small) / (n - n_small))
    enum_big = np.asarray(lat[f"enumerate_{n}"])
    # a batch of `batch` concurrent registers (+ as many unregisters) took this long: per-item cost
    svc_batch_item = float(srv.get("register_batch", svc_reg))
    t_batch = med["register_batch"]
    net_batch_item = max(0.0, (t_batch - med["register"]) / batch - svc_batch_item)
    registry = {
        "service": {
            "default": {"kind": "constant", "value": svc_hb},
            "register": {"kind": "constant", "value": svc_reg},
            "heartbeat": {"kind": "constant", "value": svc_hb},
            "query": {"kind": "constant", "value": svc_base, "per_item": svc_item},
            "count": {"kind": "constant", "value": svc_base, "per_item": svc_item / 4},
            "claim": REGISTRY_DEFAULTS["service"]["claim"],
            "batch": {"kind": "constant", "value": svc_reg, "per_item": svc_batch_item},
        },
        "network": {
            "default": _empirical(np.asarray(lat["heartbeat"]) - svc_hb),
            "register": _empirical(np.asarray(lat["register"]) - svc_reg),
            "heartbeat": _empirical(np.asarray(lat["heartbeat"]) - svc_hb),
            "query": _empirical(enum_big - svc_big - net_item * n, net_item),
            "count": _empirical(enum_big - svc_big - net_item * n),
            "batch": _empirical(np.asarray(lat["heartbeat"]) - svc_hb, net_batch_item),
        },
    }
    # multicast = its query + the fan-out; the coordinator reports both, so fit the fan-out alone
    fan = {k: np.asarray(v, dtype=float) for k, v in extras.items() if str(k).startswith("fanout_")}
    fmed = {k: float(np.median(v)) for k, v in fan.items()}
    c_pub = max(1e-7, (fmed[f"fanout_publish_{n}"] - fmed[f"fanout_publish_{n_small}"]) / (n - n_small))
    c_req = max(1e-7, (fmed[f"fanout_ack_{n}"] - fmed[f"fanout_ack_{n_small}"]) / (n - n_small))
    flush = fan[f"fanout_publish_{n}"] - c_pub * n
    deliveries = np.asarray(extras.get(f"delivery_publish_{n_small}") or [6.6e-4])
    delivery = deliveries - c_pub * (n_small + 1) / 2
    # an ack fan-out ends with its slowest send, max_i((i+1) c_req + delivery_i) + ack: bootstrap that max
    draws = np.random.default_rng(0).choice(np.clip(delivery, 1e-6, None), (400, n))
    slowest = float(np.median(np.max(draws + c_req * np.arange(1, n + 1), axis=1)))
    ack = max(1e-6, fmed[f"fanout_ack_{n}"] - slowest)
    messaging = {
        "per_message": {"kind": "constant", "value": c_pub},
        "per_request": {"kind": "constant", "value": c_req},
        "flush": _empirical(flush),
        "delivery": _empirical(delivery),
        "ack": {"kind": "constant", "value": ack},
    }
    return {"registry": registry, "messaging": messaging}


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
) -> dict[str, Any]:
    """The calibration file's content: sim section, per-operation summaries, machine and parameters."""
    import datetime as _dt

    n, n_small, batch = params["n"], params["n_small"], params["batch"]
    return {
        "version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "servers": dict(servers or {})},
        "params": dict(params),
        "sim": fit_sim(lat, extras, n=n, n_small=n_small, batch=batch),
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
    "fit_sim",
    "load_calibration",
    "machine_info",
    "run_workload",
    "save_calibration",
]
