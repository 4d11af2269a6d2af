"""Wall time of every shipped scenario (sim by default), and the prism load test live beside its reference.

    .venv/bin/python benchmarks/bench_scenarios.py                 # all scenarios, sim, full scale
    .venv/bin/python benchmarks/bench_scenarios.py --live          # + prism-loadtest live (starts servers)
    .venv/bin/python benchmarks/bench_scenarios.py --only iot-device-management --repeat 3

Prints one row per run (wall seconds, simulated seconds, operations and deliveries per wall second)
and writes them to data/bench/scenarios.csv. Machines here are shared 2-core boxes: compare ratios
measured in one invocation, not absolute times across invocations.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcastlab.cli import reference_text  # noqa: E402
from mcastlab.measure import format_table  # noqa: E402
from mcastlab.workloads import run_scenario  # noqa: E402


def bench(path: Path, mode: str | None, repeat: int) -> list[dict[str, object]]:
    """Run one scenario ``repeat`` times; one row per run."""
    rows = []
    for i in range(repeat):
        t0 = time.perf_counter()
        run = run_scenario(path, mode=mode, progress=False)
        wall = time.perf_counter() - t0
        m = run.manifest
        rows.append(
            {
                "scenario": path.stem,
                "mode": m["mode"],
                "repeat": i,
                "wall_s": round(wall, 2),
                "simulated_s": round(m["end_s"], 1),
                "ops": len(run.ops),
                "deliveries": len(run.deliveries),
                "ops_per_wall_s": round(len(run.ops) / wall),
                "deliveries_per_wall_s": round(len(run.deliveries) / wall),
                "targets_failed": int((run.targets["passed"] == False).sum()),  # noqa: E712
            }
        )
        if m["mode"] == "live" and m.get("reference"):
            print(reference_text(run))
            print(format_table(run.targets))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", help="scenario name (repeatable)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--live", action="store_true", help="also run prism-loadtest live")
    args = p.parse_args(argv)
    paths = sorted((ROOT / "scenarios").glob("*.yaml"))
    if args.only:
        paths = [q for q in paths if q.stem in args.only]
    rows = []
    for path in paths:
        rows += bench(path, "sim", args.repeat)
    if args.live:
        rows += bench(ROOT / "scenarios" / "prism-loadtest.yaml", "live", args.repeat)
    df = pd.DataFrame(rows)
    print(df.to_string(index=False))
    out = ROOT / "data" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "scenarios.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
