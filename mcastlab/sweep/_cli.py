"""``mcastlab sweep``, ``mcastlab knee`` and ``mcastlab compare`` (delegated here by :mod:`mcastlab.cli`).

Exit codes as for ``mcastlab run``: 0 done; 1 some run of the sweep failed (recorded in points.parquet
with its error; the other runs went on), or the knee is not inside [--low, --high]; 2 bad input (the
message names the option or key and the fix); 130 interrupted (a sweep keeps the runs that finished).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mcastlab.errors import McastlabError

RULE = ("A run passes when every target with data passes: a target whose verdict is 'insufficient' (too "
        "few samples to judge) counts as not passed; one with 'no data' (nothing in its band in that run, "
        "e.g. 'enumerate 1,000 identities' in a 500-device fleet) is left out.")
CLUSTER = ("Runs execute on Dask distributed: a local cluster of --workers processes (default: one per "
           "CPU), started once per command, or a running cluster at --scheduler tcp://HOST:8786 (start "
           "one with 'dask scheduler' and 'dask worker tcp://HOST:8786'; the workers need mcastlab).")


def _print(text: str = "") -> None:
    print(text, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario YAML file (see scenarios/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="fix a scenario key (dotted) for every run, repeatable")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="runs per point: the scenario's seed and the N-1 that follow (default 1)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="local worker processes (default: one per CPU)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask cluster, e.g. tcp://HOST:8786")
    p.add_argument("--mode", choices=("sim", "live"), default="sim",
                   help="sim (virtual time, default) or live (each run starts its own servers)")
    p.add_argument("--no-guard", action="store_true", help="skip the memory guard of each run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcastlab")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="run a scenario over a grid of settings x seeds, in parallel",
                       description="Run SCENARIO at every point of the grid (the cartesian product of the "
                       "--grid values) with --seeds seeds each, as independent runs. Writes points.parquet "
                       "(one row per run), summary.parquet (per point: mean and 95 %% interval over the "
                       "seeds), the runs' frames, manifest.json and plots. " + CLUSTER + " " + RULE,
                       epilog="exit: 0 done, 1 some run failed (recorded, the others went on), 2 bad input, "
                       "130 interrupted")
    _common(s)
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2", required=True,
                   help="a scenario key (dotted) and its values, repeatable: e.g. workload.devices=1000,2000")
    s.add_argument("--out", help="sweep directory (default: a new data/sweeps/<scenario>-<time>)")
    s.add_argument("--force", action="store_true", help="replace an existing --out directory whole")
    s.add_argument("--no-frames", action="store_true",
                   help="keep only points, summary and targets (no frames)")
    s.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    k = sub.add_parser("knee", help="find the largest value of a numeric key at which every target passes",
                       description="Bisection on KEY in [--low, --high], each step's probes run in parallel: "
                       "the largest value at which every target passes on every seed. Assumes monotony: "
                       "once the targets fail they fail at every larger value (if the probes contradict it, "
                       "the lowest failure is kept and a warning printed). " + CLUSTER + " " + RULE,
                       epilog="exit: 0 knee found, 1 --low already fails or --high still passes, 2 bad input")
    _common(k)
    k.add_argument("--param", required=True, metavar="KEY",
                   help="the numeric scenario key, e.g. workload.devices")
    k.add_argument("--low", required=True, help="low end (integers: the key stays an integer)")
    k.add_argument("--high", required=True, help="high end")
    k.add_argument("--tolerance", type=float, default=0.05,
                   help="stop when the bracket is this narrow relative to the knee (default 0.05); "
                   "integers also stop when adjacent")
    k.add_argument("--probes", type=int, default=3, help="values probed in parallel per step (default 3)")
    c = sub.add_parser("compare", help="compare runs and sweeps side by side",
                       description="Compare N run directories and/or sweep directories (a sweep expands "
                       "into its runs). Runs are named by the scenario keys that differ between them.")
    c.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP")
    c.add_argument("--plot", help="also write a latency ECDF overlay PNG here")
    return p


def main(argv: Sequence[str]) -> int:
    """Entry point for ``mcastlab sweep|knee|compare ...`` (``argv`` starts with the command)."""
    args = _parser().parse_args(list(argv))
    try:
        if args.command == "compare":
            from mcastlab.sweep.compare import cli_compare

            return cli_compare(args.paths, plot=args.plot)
        return _sweep(args) if args.command == "sweep" else _knee(args)
    except McastlabError as exc:
        print(f"mcastlab {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _sweep(args: argparse.Namespace) -> int:
    from mcastlab.measure.store import new_run_dir
    from mcastlab.sweep._grid import parse_grid
    from mcastlab.sweep._sweep import sweep
    from mcastlab.sweep._text import sweep_text
    from mcastlab.workloads.scenario import load_scenario, parse_overrides

    overrides = parse_overrides(args.set)
    grid = parse_grid(args.grid)
    if args.out:
        out, force = Path(args.out), args.force
    else:
        from datetime import UTC, datetime

        name = load_scenario(args.scenario, overrides).name
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        out, force = new_run_dir(Path("data") / "sweeps", f"{name}-{stamp}"), False
    result = sweep(args.scenario, grid, seeds=args.seeds, overrides=overrides, workers=args.workers,
                   scheduler=args.scheduler, out=out, force=force, mode=args.mode, frames=not args.no_frames,
                   progress=not args.no_progress, guard_memory=not args.no_guard)
    _print(sweep_text(result))
    written = "points, summary, frames" if not args.no_frames else "points, summary, targets"
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        from mcastlab.sweep.plots import save_all

        save_all(result, out / "plots")
        written += ", plots"
    _print(f"\n{written} and manifest written to {out}")
    if result.interrupted:
        print("mcastlab sweep: interrupted; kept the runs that finished", file=sys.stderr)
        return 130
    return 1 if len(result.failed) else 0


def _knee(args: argparse.Namespace) -> int:
    from mcastlab.errors import UsageError
    from mcastlab.sweep._knee import knee
    from mcastlab.sweep._text import knee_text
    from mcastlab.workloads.scenario import parse_overrides

    ends: list[int | float] = []
    for name in ("low", "high"):
        text = getattr(args, name).strip().replace("_", "")
        try:
            ends.append(int(text))
        except ValueError:
            try:
                ends.append(float(text))
            except ValueError:
                raise UsageError(f"--{name} {text!r}: expected a number. Fix: e.g. --{name} 1000") from None
    result = knee(args.scenario, args.param, ends[0], ends[1], seeds=args.seeds, tolerance=args.tolerance,
                  probes=args.probes, overrides=parse_overrides(args.set), workers=args.workers,
                  scheduler=args.scheduler, mode=args.mode, progress=not args.no_progress,
                  guard_memory=not args.no_guard)
    _print(knee_text(result))
    return 0 if result.found else 1


__all__ = ["main"]
