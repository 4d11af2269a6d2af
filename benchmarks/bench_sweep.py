"""A sweep of 8 sim runs on a local Dask cluster of 1 worker vs 2 workers, side by side (goal: >= 1.6x).

    .venv/bin/python benchmarks/bench_sweep.py              # 8 IoT runs (2 fleet sizes x 4 seeds), 3 rounds
    .venv/bin/python benchmarks/bench_sweep.py --rounds 5 --devices 2000,2400 --seeds 4

Each round times the same sweep (the IoT scenario at ~2,000 devices for 5 virtual minutes: a few
seconds per run) on a 1-worker and a 2-worker ``LocalCluster`` of worker processes, in alternating
order (1-2, then 2-1, ...) so that drift in the machine's load does not favour one side. Worker
start-up is paid once per cluster and is **not** in the timed part: each cluster is started, its
workers import mcastlab and run one tiny scenario (untimed), then the sweep is timed from submission
to the last result. Prints every round, the median speed-up, the start-up times, the CPU share the runs
got, and a baseline measured in the same run: how much faster two plain CPU-bound processes do twice
the work than one (2.0x on two free cores; these 2-core machines are shared, and other work lowers it
and the sweep's speed-up alike). Checks that both clusters produced identical points (apart from run
ids and the clock columns).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIO = ROOT / "scenarios" / "iot-device-management.yaml"
FIXED = {"duration": 300, "warmup": 60, "config.max_identities": "auto"}


def _warm_run() -> float:
    """On each worker: one tiny run, so the timed sweep does not pay first-use costs (untimed)."""
    from mcastlab.workloads import run_scenario

    t0 = time.perf_counter()
    run_scenario(SCENARIO, overrides={**FIXED, "workload.devices": 50, "duration": 90}, progress=False)
    return time.perf_counter() - t0


def _burn(n: int = 8_000_000) -> float:
    """Pure-Python CPU work; returns its wall time."""
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t0


def machine_parallelism() -> float:
    """The baseline: how much faster two CPU-bound processes finish two pieces of work than one does,
    right now (2.0 on two free cores; less when other work shares them). Pool start-up not timed."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_burn, [1000, 1000])  # both processes started
        t0 = time.perf_counter()
        pool.apply(_burn)
        pool.apply(_burn)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.map(_burn, [8_000_000, 8_000_000], chunksize=1)
        parallel = time.perf_counter() - t0
    return serial / parallel


def timed_sweep(workers: int, grid: dict[str, list[Any]], seeds: int) -> tuple[float, float, Any]:
    """(start-up s, sweep wall s, points) of one sweep on a fresh LocalCluster of ``workers`` processes."""
    from mcastlab.dask_cluster import cluster
    from mcastlab.sweep import sweep

    t0 = time.perf_counter()
    with cluster(workers=workers) as client:
        addresses = list(client.nthreads())  # a task on each worker (not client.run: the event loop's thread)
        client.gather([client.submit(_warm_run, pure=False, workers=[a]) for a in addresses])
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = sweep(SCENARIO, grid, seeds=seeds, overrides=FIXED, client=client, progress=False)
        wall = time.perf_counter() - t1
    return startup, wall, result.points


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="1-vs-2-worker pairs to time (default 3)")
    p.add_argument("--devices", default="2000,2400", help="fleet sizes swept (default 2000,2400)")
    p.add_argument("--seeds", type=int, default=4, help="seeds per fleet size (default 4: 8 runs)")
    args = p.parse_args(argv)
    grid = {"workload.devices": [int(x) for x in args.devices.split(",")]}
    n_runs = len(grid["workload.devices"]) * args.seeds
    print(f"sweep of {n_runs} sim runs ({SCENARIO.name}, devices {grid['workload.devices']} x {args.seeds} "
          f"seeds, {FIXED['duration']} virtual s each) on {os.cpu_count()} CPUs; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    base = [machine_parallelism()]
    print(f"baseline: 2 CPU-bound processes do {base[0]:.2f}x the work of 1 in the same time, right now")
    walls: dict[int, list[float]] = {1: [], 2: []}
    starts: dict[int, list[float]] = {1: [], 2: []}
    points: dict[int, Any] = {}
    for r in range(args.rounds):
        order = (1, 2) if r % 2 == 0 else (2, 1)
        for w in order:
            startup, wall, pts = timed_sweep(w, grid, args.seeds)
            walls[w].append(wall)
            starts[w].append(startup)
            points[w] = pts
            share = pts["cpu_s"].sum() / (wall * w)  # < 1: the workers waited for a CPU (other load)
            print(f"round {r + 1}: {w} worker{'s' if w > 1 else ' '}  sweep {wall:6.2f} s  "
                  f"(start-up {startup:.2f} s, untimed; CPU the runs got per worker: {share:.0%}; "
                  f"load average {os.getloadavg()[0]:.2f})", flush=True)
        base.append(machine_parallelism())
        print(f"round {r + 1}: speed-up {walls[1][-1] / walls[2][-1]:.2f}x  "
              f"(baseline after it: {base[-1]:.2f}x)", flush=True)
    ratios = [a / b for a, b in zip(walls[1], walls[2], strict=True)]
    runs_s = statistics.median(points[1]["wall_s"])
    def each(xs: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in xs)

    print(f"\n1 worker : median {statistics.median(walls[1]):.2f} s  ({each(walls[1])})")
    print(f"2 workers: median {statistics.median(walls[2]):.2f} s  ({each(walls[2])})")
    print(f"speed-up : median {statistics.median(ratios):.2f}x  (per round: {each(ratios)}; goal >= 1.6x)")
    print(f"baseline : median {statistics.median(base):.2f}x  ({each(base)}): what 2 processes gain here now")
    print(f"start-up : median {statistics.median(starts[1]):.2f} s (1 worker), "
          f"{statistics.median(starts[2]):.2f} s (2 workers), once per sweep, not timed")
    print(f"one run  : median {runs_s:.2f} s of wall time on a worker; load average after: "
          f"{os.getloadavg()[0]:.2f}")
    clocks = ["run", "wall_s", "cpu_s"]
    same = points[1].drop(columns=clocks).equals(points[2].drop(columns=clocks))
    print(f"points identical on 1 and 2 workers (apart from run ids and the clock columns): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
