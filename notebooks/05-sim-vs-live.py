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
# # 05 · Sim vs live: how far can you trust the simulation?
#
# **Question:** *If I calibrate the simulated backends on this machine and run the same workload live
# (real Redis and NATS) and in SimPy virtual time, how close are the latency distributions — and where
# and why do they differ?*
#
# Steps: start a local `redis-server` and `nats-server` with `mcastlab.servers` (throwaway, loopback,
# free ports); calibrate the sim models with `mcastlab.calibrate`; run one workload — the reference
# implementation's load test (`scenarios/prism-loadtest.yaml`: registers, enumerates and multicasts),
# scaled down — against the live servers and in sim with the fresh calibration; overlay the
# distributions and compute the error.
#
# **Live timings vary from run to run and machine to machine**, so the cells that print them are
# marked `# NBVAL_IGNORE_OUTPUT` (nbval then only checks that they run) and measured values in text are
# written with a leading `~` (masked by `notebooks/sanitize.cfg`). The stored outputs are one run on a
# shared 2-CPU VM.

# %%
# %matplotlib inline
import asyncio
import contextlib
import shutil
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mcastlab.calibrate import calibrate
from mcastlab.servers import servers
from mcastlab.workloads import load_scenario, run_scenario

SEED = 7
rng = np.random.default_rng(SEED)

HERE = next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "sim-model.yaml").is_file())
SCENARIO = HERE.parent / "scenarios" / "prism-loadtest.yaml"
RATE = 30.0                    # requests per second (Poisson); the reference's test used 100/s
DURATION = 10.0                # seconds of load, live (and virtual in sim)
CALIBRATION = {"n": 50, "n_small": 5, "reps": 120, "batch": 100}   # the quick calibration workload
OPS = ["register", "enumerate", "multicast"]
FIGSIZE, DPI = (10, 3.4), 80
pd.set_option("display.width", 160)
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets
workdir = Path(tempfile.mkdtemp(prefix="mcastlab-nb05-"))          # calibration file, not committed

# %% [markdown]
# ## 1. Local servers
#
# `servers("redis", "nats")` starts both on 127.0.0.1 on free ports, each with its own throwaway data
# directory, and stops them on exit (an `atexit` hook also stops them if the kernel dies). We keep the
# context open across cells with an `ExitStack` and close it at the end.

# %%
stack = contextlib.ExitStack()
live_servers = stack.enter_context(servers("redis", "nats"))
for kind, server in live_servers.items():
    print(f"{kind:5s} alive={server.alive()} url={server.url}")

# %% [markdown]
# ## 2. Calibrate
#
# `calibrate()` runs a fixed measurement workload through the real coordinator against its own fresh
# local servers (register and heartbeat singly, enumerate and multicast at two population sizes in
# both delivery modes, one operation at a time), reads Redis' own per-command time, and fits the sim
# models: server service times, client/network time as empirical samples, per-item costs, and the
# messaging pipeline's cost per message. The result is a JSON file that any scenario can use with
# `sim: {calibration: <path>}`. With `validate=True` it runs twice as many blocks, alternating, fits on
# half and checks the sim against the other half — the sim's error on the workload it was fitted to.
# (`calibrate` drives its own event loop, so inside Jupyter — which already runs one — we call it on a
# worker thread.)

# %%
# NBVAL_IGNORE_OUTPUT
cal_path = workdir / "calibration.json"
cal = await asyncio.to_thread(calibrate, cal_path, seed=SEED, validate=True, echo=None, **CALIBRATION)
check = pd.DataFrame(cal["validation"]).set_index("op")
for q in ("p50", "p99"):
    check[[f"live_{q}", f"sim_{q}"]] *= 1e3
print("calibration workload, held-out live blocks vs sim (ms):")
print(check.to_string(formatters={c: "{:+.0%}".format for c in ("rel_err_p50", "rel_err_p99")},
                      float_format="{:.3f}".format))

# %% [markdown]
# ## 3. One workload, both ways
#
# The load test at `RATE` requests/s for `DURATION` s: half registers of new identities, 30 %
# enumerates and 20 % multicasts to `status == "online"` (everyone registered so far). Live, the
# scenario's slots point at our servers; in sim, the same scenario (same seed, same request stream)
# runs on simulated backends built from the calibration file.

# %%
overrides = {
    "seed": SEED, "duration": DURATION, "drain": 3.0,
    "workload.rate": {"rate": RATE, "process": "poisson"},
    "slots": {"registry": {"backend": "redis", "url": live_servers["redis"].url},
              "messaging": {"backend": "nats", "servers": live_servers["nats"].url}},
    "sim": {"calibration": str(cal_path)},
}
scenario = load_scenario(SCENARIO, overrides)
live = run_scenario(scenario, mode="live", progress=False)
sim = run_scenario(scenario, mode="sim", progress=False)
for name, run in (("live", live), ("sim", sim)):
    print(f"{name:4s}: {run.manifest['counts']['ops']:,} operations, "
          f"{run.manifest['counts']['multicasts']:,} multicasts, backend {run.manifest['backend']}")

# %% [markdown]
# Both runs issued the same operations. Now compare them. Each operation has two durations in the
# `ops` frame: `latency_s` runs from its *scheduled* start (so a busy client cannot hide its own
# delay), `service_s` from the moment the call really started. Their difference is the *generator
# lag*: how late the client got round to issuing the request.

# %%
# NBVAL_IGNORE_OUTPUT
def percentiles(run, column):
    ok = run.ops[run.ops["ok"] & run.ops["op"].isin(OPS)]
    return ok.groupby("op")[column].quantile([0.5, 0.99]).unstack().rename(columns={0.5: "p50", 0.99: "p99"})


rows = []
for column in ("service_s", "latency_s"):
    lv, sv = percentiles(live, column), percentiles(sim, column)
    for op in OPS:
        for q in ("p50", "p99"):
            rows.append({"measure": column, "op": op, "stat": q, "live ms": 1e3 * lv.loc[op, q],
                         "sim ms": 1e3 * sv.loc[op, q],
                         "error": (sv.loc[op, q] - lv.loc[op, q]) / lv.loc[op, q]})
errors = pd.DataFrame(rows)
print(errors.to_string(index=False, formatters={"live ms": "{:.3f}".format, "sim ms": "{:.3f}".format,
                                                  "error": "{:+.0%}".format}))
lag = live.ops["lag_s"]
print(f"\nlive generator lag: p50 ~{1e3 * lag.median():.2f} ms, p99 ~{1e3 * lag.quantile(0.99):.2f} ms "
      f"(sim: {1e3 * sim.ops['lag_s'].max():.2f} ms)")

# %%
fig, axes = plt.subplots(1, len(OPS), figsize=FIGSIZE, dpi=DPI, sharey=True)
for ax, op in zip(axes, OPS, strict=True):
    for run, label, color in ((live, "live", "C0"), (sim, "sim (calibrated)", "C1")):
        o = run.ops[(run.ops["op"] == op) & run.ops["ok"]]
        v = np.sort(1e3 * o["service_s"].to_numpy())
        ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", color=color, label=label)
    ax.set(title=op, xscale="log", xlabel="service time (ms)")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("fraction of operations")
axes[0].legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

# %%
stack.close()                  # stop redis-server and nats-server, remove their data directories
shutil.rmtree(workdir)         # and our calibration file
print("servers stopped:", {kind: not s.alive() for kind, s in live_servers.items()})

# %% [markdown]
# ## Answer
#
# It depends on whether the client is busy. **On the calibration workload — one operation at a time —
# the calibrated sim reproduces live within about 10 % at the median** for register, heartbeat,
# enumerate and multicast in both modes (held-out live blocks; three runs on this VM gave −10 % to
# +7 %), while p99s, dominated by scheduling noise on a shared 2-CPU VM, are off by up to ±50–65 %.
# **On an open-loop workload the sim is optimistic by a structural margin**: in five runs of the
# load test, multicast service times still agreed within ~20 % at p50 (~45 % at p99), but the sim's
# enumerate p50 was 40–50 % and its register p50 ~80 % below live (0.1 ms vs ~0.5 ms), and measured from
# the scheduled start live was slower again by a generator lag of ~1 ms. The cause is the model's
# boundary: **the sim queues work on the Redis and NATS servers but treats the Python coordinator as
# infinitely fast**, while live every await shares one event loop with fan-outs, result decoding and
# the workload's own scheduling — so cheap operations spend most of their time waiting for the client,
# not the server. Trust the calibrated sim for server-bound questions (fan-out cost, relative
# comparisons, where a server saturates — notebook 02), re-calibrate on the machine you care about, and
# for absolute latencies of cheap operations add the live client overhead measured as here.
