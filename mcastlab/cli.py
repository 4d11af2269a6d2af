"""``mcastlab`` command line: run scenarios, report and compare runs, manage servers, calibrate.

    mcastlab run SCENARIO [--mode sim|live] [--set KEY=VALUE ...] [--out DIR [--force]] [--no-guard]
                          [--no-plots] [--quiet] [--check] [-v]
    mcastlab report RUN_DIR [--plots]
    mcastlab compare RUN_OR_SWEEP... [--plot FILE]
    mcastlab sweep SCENARIO --grid KEY=V1,V2 [--grid ...] [--seeds N] [--workers N | --scheduler ADDR] ...
    mcastlab knee SCENARIO --param KEY --low A --high B [--seeds N] [--tolerance 0.05] ...
    mcastlab validate SCENARIO ... [--set KEY=VALUE ...]
    mcastlab servers up|status|down [KIND ...]
    mcastlab calibrate ...

Exit codes: 0 done; 1 the run failed (the frames measured until then are saved) or, with ``--check``,
a target did not pass; 2 bad input (the message names the file, key and fix); 130 / 143 interrupted
by SIGINT / SIGTERM (the frames measured until then are saved, the manifest says so).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcastlab.errors import McastlabError


def _print(text: str = "") -> None:
    print(text, flush=True)


def _fmt_s(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if abs(v) < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if abs(v) < 1:
        return f"{v * 1e3:.2f} ms"
    return f"{v:.2f} s"


def summary_text(run: Any) -> str:
    """The percentile summary as text (times with units)."""
    s = run.summary()
    if not len(s):
        return "(no operations measured)"
    rows: list[tuple[str, ...]] = [
        ("measure", "count", "errors", "mean", "p50", "p90", "p99", "p99.9", "max")
    ]
    for measure, r in s.iterrows():
        rows.append(
            (
                str(measure),
                f"{int(r['count']):,}",
                f"{int(r['errors']):,}",
                *(_fmt_s(float(r[c])) for c in ("mean", "p50", "p90", "p99", "p99.9", "max")),
            )
        )
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()
        for row in rows
    )


def reference_text(run: Any) -> str:
    """Our figures beside a scenario's published reference figures (``reference.ops``), if any."""
    ref = (run.manifest.get("reference") or {}).get("ops") or {}
    if not ref:
        return ""
    ops = run.ops[run.ops["t_start"] >= run.warmup]
    mc = run.multicasts[run.multicasts["t_start"] >= run.warmup]
    rows = [
        ("operation", "count", "errors", "mean", "max", "reference count", "reference mean", "reference max")
    ]
    for op, r in ref.items():
        g = ops[(ops["op"] == op) & ops["ok"]]["latency_s"]
        errors = int(((ops["op"] == op) & ~ops["ok"]).sum())
        rows.append(
            (
                op,
                f"{len(g):,}",
                f"{errors:,}",
                _fmt_s(float(g.mean())) if len(g) else "n/a",
                _fmt_s(float(g.max())) if len(g) else "n/a",
                f"{r.get('count', 'n/a'):,}"
                if isinstance(r.get("count"), int)
                else str(r.get("count", "n/a")),
                _fmt_s(float(r["mean"])) if "mean" in r else "n/a",
                _fmt_s(float(r["max"])) if "max" in r else "n/a",
            )
        )
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()
        for row in rows
    ]
    extra = run.manifest.get("reference") or {}
    if len(mc) and mc["targeted"].sum():
        ratio = mc["delivered"].sum() / mc["targeted"].sum()
        lines.append(
            f"multicast: {mc['targeted'].mean():,.0f} targets each on average, {ratio:.2%} delivered"
            + (f" (reference: {extra['delivered_ratio']:.2%})" if "delivered_ratio" in extra else "")
        )
    if extra.get("note"):
        lines.append(f"reference: {extra['note']}")
    return "\n".join(lines)


def throughput_text(run: Any) -> str:
    """Offered vs achieved operations per second, per operation (from the timeseries frame)."""
    from mcastlab.measure.timeseries import throughput

    t = throughput(run.timeseries, warmup=run.warmup)
    if not len(t):
        return ""
    rows = [("operation", "offered/s", "achieved/s", "errors/s")]
    for op, r in t.iterrows():
        rows.append((str(op), f"{r['offered_rate']:,.2f}", f"{r['achieved_rate']:,.2f}",
                     f"{r['errors_rate']:,.2f}"))
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row))
                     for row in rows)


def resources_text(run: Any) -> str:
    """Busy fraction of each resource (which one gives out first)."""
    from mcastlab.measure.resources import first_to_give_out

    res = run.manifest.get("resources") or {}
    busy = res.get("busy") or {}
    if not busy:
        return ""
    parts = ", ".join(f"{k} {v:.0%}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]))
    top = first_to_give_out(res)
    lead = f"; busiest: {top[0]}" if top else ""
    return f"resources busy ({res.get('source', '?')}): {parts}{lead}"


def _report(run: Any, *, header: bool = True) -> None:
    from mcastlab.measure import format_table

    m = run.manifest
    if header:
        state = f", INTERRUPTED by {m.get('signal') or 'a signal'}" if m.get("interrupted") else ""
        state += ", FAILED" if m.get("error") else ""
        _print(
            f"run {m.get('run')}  ({m.get('mode')}, {m.get('backend')}, seed {m.get('seed')}, "
            f"{m.get('wall_s', 0):.1f} s wall{state})"
        )
    _print()
    _print(summary_text(run))
    tp = throughput_text(run)
    if tp:
        _print()
        _print(tp)
    rs = resources_text(run)
    if rs:
        _print(rs)
    a = run.audit()
    _print()
    _print(
        f"targeting audit: {a['targeted']:,} targeted, {a['delivered']:,} delivered, {a['failed']:,} failed; "
        f"stale {a['stale']:,}, missed {a['missed']:,}, duplicated {a['duplicated']:,}, "
        f"wrong {a['wrong']:,}, uncertain {a['uncertain']:,}"
    )
    c = m.get("counts", {})
    if c:
        _print(
            f"expirations: {c.get('expirations', 0):,} reported, "
            f"{c.get('expected_expirations', 0):,} expected by the ground truth "
            f"({c.get('deaths', 0):,} deaths injected)"
        )
    ref = reference_text(run)
    if ref:
        _print()
        _print("beside the reference's published figures:")
        _print(ref)
    _print()
    _print(format_table(run.targets))
    for w in m.get("warnings") or []:
        _print(f"warning: {w}")
    err = m.get("error")
    if err:
        _print(f"error: the run stopped on {err.get('type')}: {err.get('message')}")


def _cmd_run(args: argparse.Namespace) -> int:
    from mcastlab.measure.store import new_run_dir
    from mcastlab.workloads import load_scenario, parse_overrides, run_scenario
    from mcastlab.workloads.runner import RunFailedError

    scn = load_scenario(args.scenario, parse_overrides(args.set or []))
    mode = args.mode or scn.mode
    if args.out:
        out, force = Path(args.out), args.force
    else:
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        out, force = new_run_dir(Path("data") / "runs", f"{scn.name}-{mode}-{stamp}"), False
    failed: RunFailedError | None = None
    try:
        run = run_scenario(scn, mode=mode, out=out, progress=not args.no_progress, force=force,
                           guard_memory=not args.no_guard)
    except RunFailedError as exc:
        failed, run = exc, exc.result
    if not args.quiet:
        _report(run)
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        from mcastlab.plots import save_all

        save_all(run, out / "plots")
    _print(f"\nframes, manifest{'' if args.no_plots else ' and plots'} written to {out}")
    if run.interrupted:
        sig = run.manifest.get("signal")
        print(f"mcastlab run: interrupted by {sig}; kept what was measured", file=sys.stderr)
        return int(run.manifest.get("exit_code") or 130)
    if failed is not None:
        print(f"mcastlab run: {failed}", file=sys.stderr)
        return 1
    if args.check and (run.targets["verdict"].isin(["fail", "insufficient"])).any():
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mcastlab.measure import load_run

    run = load_run(args.run_dir)
    _report(run)
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        from mcastlab.plots import save_all

        paths = save_all(run, Path(args.run_dir) / "plots")
        _print(f"\n{len(paths)} plots written to {Path(args.run_dir) / 'plots'}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    """Everything ``run`` checks before it starts (scenario keys, filters, targets, slots, calibration
    files, the memory guard's estimate), for each file; exit 2 if any is refused."""
    from mcastlab.workloads import guard, load_scenario, parse_overrides

    overrides = parse_overrides(args.set or [])
    bad = 0
    for path in args.scenarios:
        try:
            scn = load_scenario(path, overrides)
            est = guard.estimate(scn)
        except McastlabError as exc:
            print(f"mcastlab validate: {exc}", file=sys.stderr)
            bad += 1
            continue
        _print(f"{path}: ok ({scn.workload.kind}, {scn.mode}, {scn.duration:g} s, "
               f"max_identities {scn.config.max_identities:,}, ~{est.peak_bytes / 1e6:,.0f} MB estimated)")
    return 2 if bad else 0


def _delegate(module: str, what: str, argv: Sequence[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            print(f"mcastlab {what}: {module} is not available in this installation", file=sys.stderr)
            return 2
        raise
    try:
        return int(mod.main(list(argv)) or 0)
    except SystemExit as exc:  # argparse --help / usage errors inside the delegate
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


_CURVES = {
    "sweep": "run a scenario over a grid of settings x seeds on Dask; points, summary, plots",
    "knee": "bisect a numeric key for the largest value at which every target passes",
    "compare": "compare N runs and/or sweeps, named by the scenario keys that differ",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mcastlab",
        description="The multicast registry pattern, run live or in SimPy virtual time, and measured.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show mcastlab's log (-v: warnings and swallowed exceptions, -vv: debug)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario; print the targets table; write frames and plots")
    r.add_argument("scenario", help="scenario YAML file (see scenarios/)")
    r.add_argument("--mode", choices=("sim", "live"), help="override the scenario's mode")
    r.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a scenario key (dotted), repeatable"
    )
    r.add_argument("--out", help="run directory (default: a new data/runs/<scenario>-<mode>-<time>); "
                   "must be empty or new")
    r.add_argument("--force", action="store_true", help="replace an existing --out directory whole")
    r.add_argument("--no-guard", action="store_true",
                   help="skip the memory guard (runs whose estimate exceeds the available memory)")
    r.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--quiet", action="store_true", help="do not print the summary and targets")
    r.add_argument("--check", action="store_true", help="exit 1 if any target failed")
    r.set_defaults(fn=_cmd_run)
    rep = sub.add_parser("report", help="print a saved run's summary and targets")
    rep.add_argument("run_dir")
    rep.add_argument("--plots", action="store_true", help="(re)write the run's plots")
    rep.set_defaults(fn=_cmd_report)
    for name, text in _CURVES.items():  # parsed in mcastlab.sweep._cli (mcastlab NAME --help)
        sub.add_parser(name, help=text, add_help=False)
    v = sub.add_parser("validate", help="check scenario files without running them")
    v.add_argument("scenarios", nargs="+")
    v.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a scenario key (dotted), repeatable"
    )
    v.set_defaults(fn=_cmd_validate)
    sub.add_parser(
        "servers", help="start/stop local redis/nats/postgres: servers up|status|down", add_help=False
    )
    sub.add_parser("calibrate", help="measure this machine's backends for the simulator", add_help=False)
    return p


def _logging(verbosity: int) -> None:
    """Route the ``mcastlab.*`` loggers to stderr: errors by default, warnings with -v, debug with -vv."""
    import logging

    level = logging.ERROR if verbosity <= 0 else (logging.WARNING if verbosity == 1 else logging.DEBUG)
    logger = logging.getLogger("mcastlab")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcastlab`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "servers":
        return _delegate("mcastlab.servers", "servers", argv[1:])
    if argv and argv[0] == "calibrate":
        return _delegate("mcastlab.calibrate", "calibrate", argv[1:])
    head = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    if head < len(argv) and argv[head] in _CURVES:  # sweep, knee, compare: mcastlab.sweep._cli
        _logging(sum(a.count("v") for a in argv[:head] if a.startswith("-v") or a == "--verbose"))
        return _delegate("mcastlab.sweep._cli", argv[head], argv[head:])
    args = _parser().parse_args(argv)
    _logging(args.verbose)
    try:
        return int(args.fn(args))
    except McastlabError as exc:
        print(f"mcastlab {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
