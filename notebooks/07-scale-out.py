# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Scale-out: registry shards and coordinator processes for a million sensors
#
# **Question:** *What do 3 and 6 registry shards and more coordinator processes buy a million-sensor
# IoT fleet — and what can this 2-core machine show live?*
#
# Notebook 02 found that at 1,000,000 sensors heartbeating every 60 s one Redis is the resource that
# gives out first: its single thread scans 10⁵-row dashboard answers, heartbeat batches queue behind
# them, and heartbeats and enumerates wait close to the 1 s client timeout (p99 0.8–0.95 s) although
# the server is busy less than half the time. Here the same fleet (the shipped
# `scenarios/iot-device-management.yaml` at 1,000,000 sensors, 3 virtual minutes) runs on the simulator
# calibrated on live Redis + NATS (`data/calibration/default.json`, see notebook 02 for its figures)
# with the registry split into **1, 3 and 6 shards** and the coordinator into **1, 3 and 6 processes**:
#
# * `sim.registry.shards: N` — N independent registry servers, as the masters of a Redis Cluster: an
#   identity's register and heartbeat go to its shard (CRC-32 of its name, as `RedisClusterRegistry`
#   routes), a pipelined batch is split across the shards, and a query asks every shard at once, each
#   scanning its share; the reply is complete when the slowest shard answers, and every row still
#   travels to, and is decoded by, the coordinator.
# * `sim.cpu.processes: N` — N coordinator replicas behind a least-loaded balancer: a pool of N CPUs on
#   which each piece of client work (encoding a batch, decoding one query's rows) runs on whichever is
#   free first. One query's decoding is not split between processes.

# %%
# %matplotlib inline
import itertools
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # no worker chatter in the cell outputs

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcastlab.dask_cluster import cluster
from mcastlab.measure.resources import first_to_give_out
from mcastlab.sim import SimSpec
from mcastlab.workloads import load_scenario

SEED = 42                      # the scenario's own seed
rng = np.random.default_rng(SEED)

HERE = next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "sanitize.cfg").is_file())
SCENARIO = HERE.parent / "scenarios" / "iot-device-management.yaml"
DEVICES = 1_000_000
SHARDS = [1, 3, 6]             # sim.registry.shards
PROCESSES = [1, 3, 6]          # sim.cpu.processes
NOISE_SEEDS = 3                # seeds at the 1 shard x 1 process point: how much one seed can mislead
DURATION, WARMUP = 180.0, 60.0 # virtual seconds per run; the 60 s boot storm is warm-up
WORKERS = 2                    # Dask worker processes (this machine has 2 cores)
COMMON = {"seed": SEED, "duration": DURATION, "warmup": WARMUP, "workload.devices": DEVICES}
OPS = ("enumerate", "heartbeat", "register")
FIGSIZE, DPI = (10, 3.4), 70
pd.set_option("display.width", 170)
warnings.filterwarnings("ignore", message="IProgress not found")
t_notebook = time.perf_counter()

scenario = load_scenario(SCENARIO, COMMON)
TIMEOUT = SimSpec.from_dict(scenario.sim).registry.timeout      # the registry client's timeout (seconds)
print(f"{scenario.name}: {DEVICES:,} sensors, heartbeat every {scenario.workload.heartbeat.period:g} s, "
      f"{scenario.duration:.0f} s virtual per run ({scenario.warmup:.0f} s warm-up), engine "
      f"{scenario.resolved_engine('sim')}, sim calibration {scenario.sim['calibration']!r}")

# %% [markdown]
# ## Nine runs, and the resources of each
#
# The question is about resources as much as latencies, so every run must keep its resource report
# (`manifest["resources"]`: the busy fraction of the coordinator CPU — per process —, of the registry
# servers — per shard, so 1.0 means every shard busy all the time — and of the messaging server).
# `mcastlab.sweep` keeps each run's latency figures but not that report (notebook 02 re-runs a seed to
# get it), and a million-sensor run costs seconds, so instead of running every point twice this
# notebook maps `run_scenario` over the grid itself, on the same kind of 2-worker Dask cluster a sweep
# uses (`mcastlab.dask_cluster.cluster`), and reads both from each run. On a bigger machine the same
# grid is `mcastlab sweep scenarios/iot-device-management.yaml --set workload.devices=1000000 --grid
# sim.registry.shards=1,3,6 --grid sim.cpu.processes=1,3,6 --seeds 3`.
#
# One seed per point keeps this under a minute; the 1 × 1 point also runs seeds 43 and 44, to show how
# far a figure moves with the seed alone. Per operation: successful samples after the warm-up, the p50
# (≥ 20 samples) and p99 (≥ 100 samples, else NaN, as in a sweep), and the share that failed (the 1 s
# client timeout).

# %%
def run_point(shards, processes, seed):
    """One run at (shards, processes, seed): per-operation figures and the resource report."""
    from mcastlab.workloads import run_scenario

    run = run_scenario(SCENARIO, progress=False, overrides={
        **COMMON, "seed": seed, "sim.registry.shards": shards, "sim.cpu.processes": processes})
    ops = run.ops[run.ops["t_start"] >= run.warmup]
    row = {"shards": shards, "processes": processes, "seed": seed}
    for op in OPS:
        g = ops[ops["op"] == op]
        lat = g.loc[g["ok"], "latency_s"].to_numpy()
        row[f"{op} n"] = len(lat)
        row[f"{op} p50 ms"] = 1e3 * np.median(lat) if len(lat) >= 20 else np.nan
        row[f"{op} p99 ms"] = 1e3 * np.percentile(lat, 99) if len(lat) >= 100 else np.nan
        row[f"{op} failed %"] = 100 * float((~g["ok"]).mean()) if len(g) else np.nan
    row.update({f"{k} busy": v for k, v in run.manifest["resources"]["busy"].items()})
    return row


grid = [(s, p, SEED) for s, p in itertools.product(SHARDS, PROCESSES)]
grid += [(SHARDS[0], PROCESSES[0], SEED + k) for k in range(1, NOISE_SEEDS)]
t0 = time.perf_counter()
with cluster(workers=WORKERS) as client:
    rows = client.gather(client.map(run_point, *zip(*grid, strict=True), pure=False))
runs = pd.DataFrame(rows).set_index(["shards", "processes", "seed"]).sort_index()
print(f"{len(runs)} runs of {DEVICES:,} sensors in ~{time.perf_counter() - t0:.0f} s of wall time on {WORKERS} workers")

# %% [markdown]
# ## Latencies

# %%
main = runs.xs(SEED, level="seed")
cols = [f"{op} {k}" for op in OPS for k in ("n", "p50 ms", "p99 ms", "failed %")]
print(f"seed {SEED}, per point (shards, processes):")
print(main[cols].round(1).to_string())
noise = runs.loc[(SHARDS[0], PROCESSES[0])]
print(f"\nseed to seed at {SHARDS[0]} shard x {PROCESSES[0]} process (seeds {', '.join(map(str, noise.index))}):")
print(noise[cols].round(1).to_string())

# %% [markdown]
# ## Resources
#
# The busy fraction of each resource over the whole run (boot included): the coordinator CPU per
# process, the registry per shard, the messaging server.

# %%
busy_cols = [c for c in main.columns if c.endswith(" busy")]
busy = main[busy_cols].copy()
busy["busiest"] = [f"{n} ({f:.0%})" for n, f in
                   (first_to_give_out({"busy": dict(zip(busy_cols, r, strict=True))}) for r in main[busy_cols].to_numpy())]
busy["busiest"] = busy["busiest"].str.replace(" busy", "", regex=False)
print(busy.round(3).to_string())

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
for k, p in enumerate(PROCESSES):
    d = main.xs(p, level="processes")
    ax1.plot(d.index, d["heartbeat p99 ms"], marker="o", color=f"C{k}",
             label=f"heartbeat p99, {p} process{'es' if p > 1 else ''}")
    ax1.plot(d.index, d["enumerate p50 ms"], marker="s", ls=":", color=f"C{k}",
             label=f"enumerate p50, {p} process{'es' if p > 1 else ''}")
for col, marker in (("heartbeat p99 ms", "o"), ("enumerate p50 ms", "s")):
    lo, hi = noise[col].min(), noise[col].max()
    ax1.errorbar([SHARDS[0] - 0.15], [(lo + hi) / 2], yerr=[[(hi - lo) / 2], [(hi - lo) / 2]], fmt="none",
                 ecolor="k", capsize=3, lw=1)
ax1.axhline(1e3 * TIMEOUT, color="tab:red", lw=1, ls="--", label=f"client timeout ({TIMEOUT:g} s)")
ax1.set(yscale="log", xticks=SHARDS, xlabel="registry shards", ylabel="latency (ms)",
        title=f"p99 over n = {int(main['heartbeat n'].min()):,}–{int(main['heartbeat n'].max()):,} batches, "
              f"p50 over {int(main['enumerate n'].min())}–{int(main['enumerate n'].max())} enumerates")
ax1.legend(fontsize=6, ncol=2, loc="lower left")
ax1.annotate(f"seeds {SEED}–{SEED + NOISE_SEEDS - 1}", (SHARDS[0] - 0.15, noise["heartbeat p99 ms"].max()),
             textcoords="offset points", xytext=(-10, 6), fontsize=6)
labels = [f"{s}×{p}" for s, p in main.index]
x = np.arange(len(main))
for k, col in enumerate(("coordinator-cpu busy", "registry-server busy", "messaging-server busy")):
    ax2.bar(x + (k - 1) * 0.27, main[col], width=0.27, color=f"C{k + 3}", label=col.replace(" busy", ""))
ax2.set(xticks=x, ylim=(0, 1), ylabel="busy fraction (per process / per shard)",
        xlabel="shards × processes", title=f"resources over the whole run (seed {SEED})")
ax2.set_xticklabels(labels, fontsize=8)
ax2.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the grid says, computed

# %%
base = main.loc[(SHARDS[0], PROCESSES[0])]
spread = {c: (noise[c].min(), noise[c].max()) for c in cols}


def beyond_noise(col, value):
    """'lower'/'higher' when outside the 1 x 1 point's range over its seeds, else 'within seed noise'."""
    lo, hi = spread[col]
    return "lower" if value < lo else "higher" if value > hi else "within seed noise"


print(f"At {SHARDS[0]} shard x {PROCESSES[0]} process: busiest {busy.loc[(SHARDS[0], PROCESSES[0]), 'busiest']}; "
      f"heartbeat p99 {spread['heartbeat p99 ms'][0]:,.0f}–{spread['heartbeat p99 ms'][1]:,.0f} ms and "
      f"{spread['heartbeat failed %'][0]:.1f}–{spread['heartbeat failed %'][1]:.1f} % of batches failed, "
      f"enumerate p50 {spread['enumerate p50 ms'][0]:,.0f}–{spread['enumerate p50 ms'][1]:,.0f} ms, "
      f"{spread['enumerate failed %'][0]:.1f}–{spread['enumerate failed %'][1]:.1f} % of enumerates failed "
      f"(over seeds {SEED}–{SEED + NOISE_SEEDS - 1})")
for (s, p), r in main.iterrows():
    if (s, p) == (SHARDS[0], PROCESSES[0]):
        continue
    print(f"  {s} shard{'s' if s > 1 else ''} x {p} process{'es' if p > 1 else ''}: busiest {busy.loc[(s, p), 'busiest']:<22}"
          f" heartbeat p99 {r['heartbeat p99 ms']:>6,.0f} ms ({beyond_noise('heartbeat p99 ms', r['heartbeat p99 ms'])}),"
          f" failed {r['heartbeat failed %']:.1f} %; enumerate p50 {r['enumerate p50 ms']:,.0f} ms"
          f" ({beyond_noise('enumerate p50 ms', r['enumerate p50 ms'])}), failed {r['enumerate failed %']:.1f} %")
best = main["enumerate p50 ms"].idxmin()
print(f"Fastest enumerates: {best[0]} shards x {best[1]} processes, p50 {main.loc[best, 'enumerate p50 ms']:,.0f} ms "
      f"for ~{DEVICES // scenario.workload.warehouses:,}-row dashboards: still "
      f"{main.loc[best, 'enumerate p50 ms'] / 10:,.0f}x the 10 ms enumerate target")
sharded = main.loc[(SHARDS[-1], PROCESSES[0])]
print(f"Shards alone ({SHARDS[-1]} x {PROCESSES[0]}): registry {base['registry-server busy']:.0%} -> "
      f"{sharded['registry-server busy']:.0%} per shard, coordinator CPU {base['coordinator-cpu busy']:.0%} -> "
      f"{sharded['coordinator-cpu busy']:.0%}")
procs = main.loc[(SHARDS[0], PROCESSES[-1])]
print(f"Processes alone ({SHARDS[0]} x {PROCESSES[-1]}): coordinator CPU {base['coordinator-cpu busy']:.0%} -> "
      f"{procs['coordinator-cpu busy']:.0%} per process, heartbeat p99 {base['heartbeat p99 ms']:,.0f} -> "
      f"{procs['heartbeat p99 ms']:,.0f} ms")

# %% [markdown]
# ## What this 2-core machine can show live
#
# Nothing about scaling. This project's machine has two cores; live, every coordinator replica, the
# Redis server(s), the NATS server and the load generator share them, so adding a replica or a shard
# adds a competitor for the same two cores, not capacity — a live run with 3 or 6 replicas here would
# measure CPU contention and call it scale-out. The simulator above is how to reason about it on this
# machine; live scaling needs a machine (or machines) with a core per replica and per server.
#
# How live replicas are run, for such a machine (not run in this notebook):
#
# ```bash
# # N coordinator replicas, each in its own Dask worker process, in front of the same servers
# mcastlab run scenarios/iot-device-management.yaml --mode live --processes 3 --set workload.devices=10000
# # a local 3-master Redis Cluster instead of one Redis (sharded registry, live)
# mcastlab run scenarios/iot-device-management.yaml --mode live --processes 3 --set slots.registry=redis-cluster
# # replicas on machines of your own: `dask scheduler`, then `dask worker tcp://HOST:8786 --nthreads 1` on each
# mcastlab run my-iot.yaml --mode live --processes 6 --scheduler tcp://HOST:8786
# ```
#
# (with `--scheduler`, every slot of the scenario must name its server, e.g. `slots: {registry:
# {backend: redis-cluster, nodes: [...]}, messaging: {backend: nats, servers: [...]}}`: the replicas
# run on other machines and cannot reach servers started on this one)
#
# or from Python, `run_scenario(SCENARIO, mode="live", processes=3)` (a scenario can say `live:
# {processes: 3, scheduler: ...}`). Each replica runs the whole workload plan and issues its share (an
# identity's register and heartbeats belong to one replica; enumerates and multicasts are dealt
# round-robin); the replicas' frames are merged into **one run with a `process` column** in `ops`,
# `expirations` and `multicasts`, whose targeting audit covers every identity, and the run's resource
# report has every replica's and server's CPU (`manifest["resources"]`), so `run.ops.groupby("process")`
# shows each replica's share and latencies.

# %% [markdown]
# ## Answer
#
# On the calibrated model, what hurts a million sensors at 1 × 1 is **head-of-line blocking on the
# one registry server**: its single thread reads 10⁵-row dashboard answers while heartbeat batches wait
# behind them, and their p99s reach a quarter to most of a second (over three seeds) although the
# server is busy a third of the time. The computed lines above give each point's figures and whether
# they move beyond what three seeds of the 1 × 1 point spread over. **Shards** divide the registry's
# load (busy per shard falls by the shard count) and each answer: the heartbeat p99 falls by about a
# third and the enumerates' p50 by a third from 3 shards on, which leaves the coordinator's CPU the
# busiest resource at one process. **Coordinator processes** divide that, and alone they already help
# a little (1 × 6: heartbeat p99 about 0.16 s); shards and processes together do best (6 × 3: heartbeat
# p99 under 0.1 s). **Nothing here brings an enumerate near its target**: one query's 10⁵ rows must
# still be read, travel to and be decoded by one process, so the dashboards stay four to seven times
# above the 10 ms target at every point — a million-sensor fleet needs answers that do not grow with it
# (counts, pages, or dashboards over aggregates). And this 2-core machine cannot show any of it live:
# replicas and servers would share the same two cores, so it shows the model, and how to run live
# replicas where there are cores for them.
