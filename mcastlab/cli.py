"""``mcastlab`` command line: run scenarios, report and compare runs, manage servers, calibrate.

    mcastlab run SCENARIO [--mode sim|live] [--set KEY=VALUE ...] [--out DIR [--force]] [--no-guard]
                          [--processes N [--scheduler ADDRESS]] [--no-plots] [--quiet] [--check] [-v]
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
import sys
from collections.abc import Sequence
from pathlib import Path

from mcastlab.errors import McastlabError
from mcastlab.report import _print, report_text


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
                           guard_memory=not args.no_guard, processes=args.processes, scheduler=args.scheduler)
    except RunFailedError as exc:
        failed, run = exc, exc.result
    if not args.quiet:
        report_text(run)
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
    report_text(run)
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
    r.add_argument("--processes", type=int, metavar="N",
                   help="live: run N coordinator replicas, each in its own Dask worker process "
                   "(default: the scenario's live.processes, 1)")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="live replicas on a running Dask cluster (tcp://host:8786) instead of a local one; "
                   "every slot must then name its server")
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
