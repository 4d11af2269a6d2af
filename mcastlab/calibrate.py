"""``mcastlab calibrate``: measure live Redis + NATS here, save a calibration file, validate sim against live.

:func:`calibrate` starts redis-server and nats-server on loopback (``mcastlab.servers``), runs the
calibration workload (:func:`mcastlab.workloads.calibration_load.run_workload`) through the real
coordinator with RedisRegistry + NatsMessaging, reads Redis' own per-command busy time and the process's
CPU time, fits the sim models and saves JSON (empirical samples, fitted lognormals, machine info).
:func:`validate` runs the same workload live (fresh servers) and in sim with that file and returns
per-operation p50/p99 and their relative errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mcastlab.calibrate_host import ServerCpu, nats_cpu_per_message, redis_command_usec
from mcastlab.errors import BackendUnavailableError, McastlabError, UnsupportedError
from mcastlab.measure.resources import usable_cpus
from mcastlab.runtime._asyncio import run_blocking
from mcastlab.sim._calfile import REPO_ROOT, resolve_calibration
from mcastlab.sim.calibration import build_calibration, fit_cpu, save_calibration
from mcastlab.sim.models import GapTable, WakeCurve
from mcastlab.workloads.calibration_load import generator_cpu, measure_idle, recorder_cpu, run_workload

DEFAULT_OUT = REPO_ROOT / "data" / "calibration" / "local.json"
PARAMS = {"n": 100, "n_small": 10, "reps": 400, "batch": 200}
QUICK = {"n": 50, "n_small": 5, "reps": 120, "batch": 100}
TOLERANCE = 0.25
#: validation rows: table op -> workload label ({n} is the population size)
OPS = {
    "register": "register",
    "heartbeat": "heartbeat",
    "enumerate": "enumerate_{n}",
    "multicast": "multicast_publish_{n}",
    "multicast_ack": "multicast_ack_{n}",
}
ACCEPTANCE = ("register", "enumerate", "multicast")


def _live_classes() -> tuple[Any, Any]:
    try:
        from mcastlab.backends import NatsMessaging, RedisRegistry
    except (ImportError, AttributeError, McastlabError) as exc:
        raise UnsupportedError(
            f"calibration needs the live backends RedisRegistry and NatsMessaging, which are not available: "
            f"{exc}. Install the live extras (pip install -e '.[live]') or wait until they land"
        ) from None
    return RedisRegistry, NatsMessaging


def _merge(runs: Sequence[tuple[dict[str, list[float]], dict[str, Any]]]) -> tuple[dict[str, Any], ...]:
    """Pool several workload runs: samples concatenated, server times averaged."""
    lat: dict[str, list[float]] = {}
    extras: dict[str, Any] = {"server_s": {}}
    servers_s: dict[str, list[float]] = {}
    for run_lat, run_extras in runs:
        for k, v in run_lat.items():
            lat.setdefault(k, []).extend(v)
        for k, v in run_extras.items():
            if k == "server_s":
                for op, t in v.items():
                    servers_s.setdefault(op, []).append(t)
            elif isinstance(v, list):
                extras.setdefault(k, []).extend(v)
            elif k == "wide_n":  # a size, the same in every run: not a count to add up
                extras[k] = v
            else:
                extras[k] = extras.get(k, 0) + v
    extras["server_s"] = {op: float(np.mean(ts)) for op, ts in servers_s.items()}
    return lat, extras


def _live(
    params: dict[str, Any], seed: int, runs: int = 1
) -> tuple[list[tuple[dict[str, list[float]], dict[str, Any]]], dict[str, str], dict[str, Any]]:
    """Run the workload ``runs`` times (fresh key prefix each) on one pair of local redis + nats servers,
    then measure what idleness costs (``measure_idle``)."""
    RedisRegistry, NatsMessaging = _live_classes()  # noqa: N806 - classes
    from mcastlab import Config, Coordinator
    from mcastlab.runtime import AsyncioRuntime
    from mcastlab.servers import servers

    try:
        ctx = servers("redis", "nats")
        srv = ctx.__enter__()
    except McastlabError as exc:
        raise BackendUnavailableError(
            f"cannot start redis-server and nats-server for calibration: {exc}"
        ) from exc
    try:
        urls = {k: s.url for k, s in srv.items()}
        versions = {k: f"{s.version} @ {s.url}" for k, s in srv.items()}
        busy = redis_command_usec(urls["redis"])

        async def one(run: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
            coord = Coordinator(
                Config(max_identities=None, default_ttl=3600.0),
                registry=RedisRegistry(urls["redis"], prefix=f"cal{seed}r{run}:"),
                messaging=NatsMessaging(urls["nats"], prefix=f"cal{seed}r{run}"),
                runtime=AsyncioRuntime(),
                name=f"calibrate-{seed}-{run}",
            )
            async with coord:
                return await run_workload(coord, seed=seed + run, server_usec=busy,
                                          cpu_seconds=time.process_time, **params)

        meter = ServerCpu(srv["redis"].pid, busy)
        results = [run_blocking(one(r)) for r in range(runs)]
        host: dict[str, float] = {**meter.redis(), "host_cores": usable_cpus()}

        async def idle() -> dict[str, Any]:
            coord = Coordinator(Config(max_identities=None, default_ttl=3600.0),
                                registry=RedisRegistry(urls["redis"], prefix=f"cal{seed}idle:"),
                                messaging=NatsMessaging(urls["nats"], prefix=f"cal{seed}idle"),
                                runtime=AsyncioRuntime(), name=f"calibrate-{seed}-idle")
            async with coord:
                host["nats_cpu_per_msg"] = await nats_cpu_per_message(coord, srv["nats"].pid)
                return await measure_idle(coord, cpu_seconds=time.process_time)

        idle_costs = {**run_blocking(idle()), "host": host}
    finally:
        ctx.__exit__(None, None, None)
    return results, versions, idle_costs


def _sim(calibration: str | Path, params: dict[str, Any], seed: int) -> dict[str, list[float]]:
    """Run the workload in virtual time with the calibration file's models."""
    import simpy

    from mcastlab import Config, Coordinator
    from mcastlab.runtime import SimPyRuntime
    from mcastlab.sim import make_sim_backends

    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends({"calibration": str(calibration)}, rng=np.random.default_rng(seed))
    coord = Coordinator(
        Config(max_identities=None, default_ttl=3600.0),
        registry=reg,
        messaging=msg,
        runtime=rt,
        name=f"calibrate-{seed}",
    )

    async def main() -> dict[str, list[float]]:
        async with coord:
            lat, _ = await run_workload(coord, seed=seed, **params)
            return lat

    return rt.run(main())


def calibrate(
    out_path: str | Path = DEFAULT_OUT,
    *,
    n: int = PARAMS["n"],
    n_small: int = PARAMS["n_small"],
    reps: int = PARAMS["reps"],
    batch: int = PARAMS["batch"],
    seed: int = 0,
    validate: bool = False,
    blocks: int = 4,
    echo: Callable[[str], Any] | None = print,
) -> dict[str, Any]:
    """Measure live Redis + NATS latency per operation here; save and return the calibration.

    The live workload runs in ``blocks`` blocks of ``reps / blocks`` repetitions. With ``validate``,
    twice as many blocks run, alternating between calibration and validation, so that the slow drift of
    a shared machine's load affects both halves alike; the validation table (live half vs the sim with
    the new file) is then printed, stored under ``validation`` in the file and returned there.
    """
    params = {"n": n, "n_small": n_small, "reps": reps, "batch": batch}
    block = {**params, "reps": max(n_small + 1, reps // blocks)}
    if echo:
        echo(f"calibrating against local redis-server + nats-server ({params}, {blocks} blocks) ...")
    runs, versions, idle = _live(block, seed, runs=blocks * (2 if validate else 1))
    lat, extras = _merge(runs[0::2] if validate else runs)
    extras["host"] = idle["host"]  # the machine's cores and the servers' CPU (mcastlab.calibrate_host)
    cpu = fit_cpu(extras.get("cpu", []), per_op=generator_cpu())
    cpu["per_target"] = recorder_cpu()
    timer = GapTable.fit(idle["timer"])  # the generator wakes late from an idle sleep (sim/cpu.py)
    if timer is not None:
        cpu["timer"] = timer.to_dict()
    wake_cpu = WakeCurve.fit(idle.get("wake_cpu", {}))  # waking from idle costs CPU too (sim/cpu.py)
    if wake_cpu is not None:
        cpu["wake_cpu"] = wake_cpu.to_dict()
    data = build_calibration(lat, extras, params={**params, "seed": seed, "blocks": blocks}, servers=versions,
                             cpu=cpu)
    wake = GapTable.fit(idle["wake"])  # a call reaching an idle redis-server is answered late (sim/spec.py)
    if wake is not None:
        data["sim"]["registry"]["wake"] = wake.to_dict()
    path = save_calibration(data, out_path)
    if echo:
        echo(f"saved {path}")
        for op, m in data["measurements"].items():
            echo(f"  {op:24s} n={m['n']:5d}  p50 {m['p50'] * 1e3:8.3f} ms  p99 {m['p99'] * 1e3:8.3f} ms")
    if validate:
        live, _ = _merge(runs[1::2])
        df = compare(live, _sim(path, params, seed + 1000), n)
        if echo:
            echo(f"validation: live (interleaved blocks) vs sim with {path.name}")
            echo(format_table(df))
        data["validation"] = df.to_dict(orient="records")
        save_calibration(data, path)
    return data


def compare(live: dict[str, list[float]], sim: dict[str, list[float]], n: int) -> Any:
    """Per operation: live vs sim p50/p99 and relative errors (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for op, label in OPS.items():
        key = label.format(n=n)
        lv, sv = np.asarray(live[key]), np.asarray(sim[key])
        lp50, lp99 = np.percentile(lv, [50, 99])
        sp50, sp99 = np.percentile(sv, [50, 99])
        rows.append(
            {
                "op": op,
                "live_p50": lp50,
                "sim_p50": sp50,
                "rel_err_p50": (sp50 - lp50) / lp50,
                "live_p99": lp99,
                "sim_p99": sp99,
                "rel_err_p99": (sp99 - lp99) / lp99,
            }
        )
    return pd.DataFrame(rows)


def format_table(df: Any) -> str:
    """The validation table in milliseconds, with PASS/FAIL for the 25 % acceptance ops."""
    lines = [
        f"{'op':14s} {'live p50':>10s} {'sim p50':>10s} {'err':>7s} {'live p99':>10s} {'sim p99':>10s} "
        f"{'err':>7s}  within {TOLERANCE:.0%}"
    ]
    for r in df.itertuples():
        ok = abs(r.rel_err_p50) <= TOLERANCE and abs(r.rel_err_p99) <= TOLERANCE
        verdict = ("PASS" if ok else "FAIL") if r.op in ACCEPTANCE else ("yes" if ok else "no") + " (info)"
        lines.append(
            f"{r.op:14s} {r.live_p50 * 1e3:8.3f}ms {r.sim_p50 * 1e3:8.3f}ms {r.rel_err_p50:+7.1%} "
            f"{r.live_p99 * 1e3:8.3f}ms {r.sim_p99 * 1e3:8.3f}ms {r.rel_err_p99:+7.1%}  {verdict}"
        )
    return "\n".join(lines)


def validate(
    calibration_path: str | Path = "default",
    *,
    n: int | None = None,
    n_small: int | None = None,
    reps: int | None = None,
    batch: int | None = None,
    seed: int = 1,
    blocks: int = 4,
    echo: Callable[[str], Any] | None = print,
) -> Any:
    """Run the calibration workload live and in sim (with ``calibration_path``); print, return the table."""
    import json

    path = resolve_calibration(calibration_path)
    stored = json.loads(path.read_text()).get("params", {}) if path.exists() else {}
    params = {
        k: (v if v is not None else stored.get(k, PARAMS[k]))
        for k, v in (("n", n), ("n_small", n_small), ("reps", reps), ("batch", batch))
    }
    sim = _sim(path, params, seed)
    runs, _, _ = _live({**params, "reps": max(params["n_small"] + 1, params["reps"] // blocks)}, seed, blocks)
    live, _ = _merge(runs)
    df = compare(live, sim, params["n"])
    if echo:
        echo(f"validation: live vs sim ({path.name}, {params})")
        echo(format_table(df))
    return df


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``mcastlab calibrate [--out PATH] [--validate] [--validate-load [--rates R,R] [--duration S]]
    [--check PATH] [--quick] [--strict]``."""
    ap = argparse.ArgumentParser(prog="mcastlab calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"file to write (default {DEFAULT_OUT})")
    ap.add_argument("--validate", action="store_true", help="also validate: interleaved live blocks vs sim")
    ap.add_argument(
        "--check", metavar="PATH", help="only validate an existing calibration file ('default' ok)"
    )
    ap.add_argument("--quick", action="store_true", help=f"smaller workload {QUICK}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strict", action="store_true", help="exit 1 if register/enumerate/multicast miss 25 %%")
    ap.add_argument("--validate-load", action="store_true",
                    help="after calibrating (or with --check PATH: instead), run the reference load test "
                         "live and in sim at each of --rates and compare them rate by rate")
    ap.add_argument("--rates", default="50,150,400", help="offered rates for --validate-load (req/s)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per --validate-load run")
    ap.add_argument("--messaging", choices=("nats", "kafka"), default="nats",
                    help="kafka: fit the Kafka sim model to a local Kafka-protocol broker (calibrate_kafka)")
    args = ap.parse_args(argv)
    if args.messaging == "kafka":
        from mcastlab.calibrate_kafka import DEFAULT_OUT as KAFKA_OUT
        from mcastlab.calibrate_kafka import calibrate_kafka

        out = KAFKA_OUT if args.out == str(DEFAULT_OUT) else args.out
        try:
            n, reps = (500, 15) if args.quick else (2000, 40)
            calibrate_kafka(out, seed=args.seed, n=n, reps=reps)
        except McastlabError as exc:
            print(f"mcastlab calibrate: {exc}", file=sys.stderr)
            return 2
        return 0
    params: dict[str, Any] = dict(QUICK if args.quick else PARAMS)
    if args.validate_load:
        return _validate_load(args, params)
    try:
        if args.check:
            df = validate(args.check, seed=args.seed + 1, **params)
        else:
            data = calibrate(args.out, seed=args.seed, validate=args.validate, **params)
            if not args.validate:
                return 0
            import pandas as pd

            df = pd.DataFrame(data["validation"])
    except McastlabError as exc:
        print(f"mcastlab calibrate: {exc}", file=sys.stderr)
        return 2
    bad = df[
        df.op.isin(ACCEPTANCE) & ((df.rel_err_p50.abs() > TOLERANCE) | (df.rel_err_p99.abs() > TOLERANCE))
    ]
    return 1 if args.strict and len(bad) else 0


def _validate_load(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """``--validate-load``: calibrate (unless ``--check PATH`` names a file), then judge sim at load."""
    from mcastlab.calibrate_load import format_load_table, validate_load

    try:
        rates = [float(r) for r in str(args.rates).split(",") if r.strip()]
    except ValueError:
        rates = []
    if not rates or any(not r > 0 for r in rates):
        print(f"mcastlab calibrate: --rates must be positive numbers like 50,150,400, got {args.rates!r}",
              file=sys.stderr)
        return 2
    if args.duration <= 0:
        print("mcastlab calibrate: --duration must be seconds > 0", file=sys.stderr)
        return 2
    try:
        if args.check:
            cal = resolve_calibration(args.check)
        else:
            calibrate(args.out, seed=args.seed, **params)
            cal = Path(args.out)
        print(f"validating {cal} at load: the reference load test, {args.duration:g} s per run, live and sim")
        df = validate_load(cal, rates=rates, duration=args.duration)
    except McastlabError as exc:
        print(f"mcastlab calibrate: {exc}", file=sys.stderr)
        return 2
    print(format_load_table(df))
    disagree = sorted(df.loc[df["verdict"] == "disagree", "rate"].unique())
    if disagree:
        print(f"sim and live disagree at {', '.join(f'{r:g}' for r in disagree)} req/s")
    return 1 if args.strict and disagree else 0


__all__ = ["DEFAULT_OUT", "calibrate", "compare", "format_table", "main", "validate"]


if __name__ == "__main__":
    raise SystemExit(main())
