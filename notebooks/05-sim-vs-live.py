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
# Steps: calibrate the sim models with `mcastlab.calibrate` (it starts its own throwaway
# `redis-server` and `nats-server` on loopback); then run the reference implementation's load test
# (`scenarios/prism-loadtest.yaml`: 50 % registers, 30 % enumerates, 20 % multicasts) at two offered
# rates, live and in sim with the fresh calibration, with `mcastlab.calibrate_load.validate_load` — the
# Python side of `mcastlab calibrate --validate-load` (issue #13). It starts fresh servers for each live
# run and reports, per rate and operation, live vs sim p50, p99 and error rate, whether each is
# *healthy*, the busiest resource of each run and a verdict per rate.
#
# **Live timings vary from run to run and machine to machine**, so the cells that print them are
# marked `# NBVAL_IGNORE_OUTPUT` (nbval then only checks that they run) and measured values in text are
# written with a leading `~` (masked by `notebooks/sanitize.cfg`). The stored outputs are one run on a
# shared 2-CPU VM.

# %%
# %matplotlib inline
import asyncio
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import psutil

from mcastlab.calibrate import calibrate
from mcastlab.calibrate_load import HEALTHY_P99, format_load_table, validate_load
from mcastlab.sim.cpu import CpuSpec

SEED = 7
rng = np.random.default_rng(SEED)

RATES = (150, 400)             # offered requests per second; the reference's test used 100/s
DURATION = 6.0                 # seconds of load per run (each live run also waits validate_load's 5 s drain)
CALIBRATION = {"n": 100, "n_small": 10, "reps": 80, "batch": 100}  # the full sizes, fewer repetitions
OPS = ["register", "enumerate", "multicast"]
GAPS_MS = [0.5, 2, 5, 20, 50]  # the idle gaps calibrate measures wake-ups at (for the printout)
FIGSIZE, DPI = (12, 3.4), 80
pd.set_option("display.width", 160)
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets
workdir = Path(tempfile.mkdtemp(prefix="mcastlab-nb05-"))          # calibration file, not committed

# %% [markdown]
# ## 1. What the simulation models, and how each part is measured
#
# A live run is one asyncio process (the coordinator, the load generator and the recorder) talking to a
# single-threaded `redis-server` and a `nats-server`. The simulator queues work on three resources,
# named as in every run's `resources` report:
#
# * **`coordinator-cpu`** — this process's one core, first come first served: a fixed cost per registry
#   call, per row decoded (enumerate) or id read (count and multicast by an exact filter), per message
#   framed in a fan-out, per fan-out, per delivery to an in-process inbox, per operation the load
#   generator schedules and records, and per multicast target it records and audits. `calibrate`
#   measures them as **CPU seconds of this process (`time.process_time`) around batches** of identical
#   operations at two population sizes, fitted as a cost per call plus a cost per item; the generator's
#   and recorder's costs come from small benchmarks of that code.
# * **`registry-server`** — Redis' own busy time per command, read from **`INFO commandstats`** (the
#   server's microseconds per command, a script's nested commands counted once) around the same batches.
# * **`messaging-server`** — NATS' cost per message: the slope of a fan-out's duration with its size
#   when nobody listens, net of the client's CPU per message; a fan-out's flush round trip is the
#   residual. A publish
#   fan-out's flush completes only after this process has read its own agents' receipts (the server's
#   reply comes behind them on the connection).
#
# What is left of each measured latency after server time and client CPU is the *network* model
# (round trip, kernel, scheduling): empirical samples, not queued. And two costs of **idleness**, both
# measured at gaps of 0.5, 2, 5, 20 and 50 ms: `registry.wake`, how much later a register is answered
# after sleeping that long than back to back (the server and this process wake up), and `cpu.timer`,
# how late the load generator's callbacks run when spaced that far apart (epoll's 1 ms granularity plus
# the wake-up); and waking costs CPU (`cpu.wake_cpu`: how much more process CPU a register uses after
# sleeping that long than back to back, charged when the simulated generator wakes). What none of this
# can see: **other processes competing for the machine's cores.** On
# this shared 2-core VM they come and go, and neither the calibration nor the simulator knows about them.
#
# `calibrate` drives its own event loop, so inside Jupyter — which already runs one — we call it on a
# worker thread. It writes a JSON file any scenario can use with `sim: {calibration: <path>}`.

# %%
# NBVAL_IGNORE_OUTPUT
cal_path = workdir / "calibration.json"
t0 = time.perf_counter()
cal = await asyncio.to_thread(calibrate, cal_path, seed=SEED, echo=None, **CALIBRATION)
sim_model = cal["sim"]
cpu = CpuSpec.from_dict(sim_model["cpu"])        # the costs the simulator uses (defaults where none was fitted)
service, msg = sim_model["registry"]["service"], sim_model["messaging"]
print(f"calibrated in ~{time.perf_counter() - t0:.1f} s; fitted costs (µs):")
fitted = pd.DataFrame({
    "coordinator CPU": {"register call": cpu.call["register"], "enumerate call": cpu.call["query"],
                        "per row decoded": cpu.per_item["query"], "per id read": cpu.per_item["ids"],
                        "per fan-out": cpu.per_fanout, "per message": cpu.per_message,
                        "per generator op": cpu.per_op, "per target recorded": cpu.per_target},
    "Redis server": {"register call": service["register"]["value"], "enumerate call": service["query"]["value"],
                     "per row decoded": service["query"].get("per_item", 0.0),
                     "per id read": service["ids"].get("per_item", 0.0)},
    "NATS server": {"per message": msg["per_message"]["value"]},
})
print((1e6 * fitted).to_string(float_format="{:.2f}".format, na_rep=""))
median = len(cpu.timer.quantiles[0]) // 2
idle = pd.DataFrame({"Redis answers late by (wake)": sim_model["registry"]["wake"]["quantiles"],
                     "generator callback late by (timer)": cpu.timer.quantiles})
idle = idle.map(lambda q: 1e3 * q[median]).set_axis([f"{g:g} ms" for g in GAPS_MS]).rename_axis("idle gap")
print("\nidleness, median extra delay (ms):")
print(idle.to_string(float_format="{:.3f}".format))

# %% [markdown]
# ## 2. At load: live vs sim, rate by rate
#
# `validate_load` runs the load test at each rate for `DURATION` seconds (plus a 5 s drain), live and
# in sim with our calibration file, with the same seed and therefore the same request stream. Latency is
# measured from each request's *scheduled* start (a busy or late client cannot hide its own delay), after
# a short warm-up. An operation is **healthy** when its p99 is under 100 ms and under 1 % of its calls
# fail; a p99 needs at least 100 successful calls, and an operation without one counts as *not* healthy
# — so the rates and duration here are chosen to give every operation 100 calls (at 50 req/s, 6 s would
# leave about 50 multicasts and the verdict "both overloaded" on two idle servers). The busiest resource
# is the run's `resources` report: live, the psutil CPU time of this process and of each server divided
# by the run's wall time; in sim, the utilisation of the three queues above — both over the whole run,
# drain included.
#
# Around each live run we also read the whole machine's CPU time, to see how much of the two cores
# *other* processes used meanwhile.

# %%
# NBVAL_IGNORE_OUTPUT
me, marks = psutil.Process(), []


def mark(message):
    """validate_load's progress callback: note the wall clock, our CPU (with our servers) and the machine's."""
    ours, machine = me.cpu_times(), psutil.cpu_times()
    marks.append((message.strip(), time.perf_counter(),
                  ours.user + ours.system + ours.children_user + ours.children_system,
                  sum(machine) - machine.idle - machine.iowait))


t0 = time.perf_counter()
load = await asyncio.to_thread(validate_load, cal_path, rates=RATES, duration=DURATION, seed=SEED, echo=mark)
mark("end")
print(f"validate_load in ~{time.perf_counter() - t0:.1f} s")
print(format_load_table(load))

others = {}
for (what, t_a, ours_a, all_a), (_, t_b, ours_b, all_b) in zip(marks, marks[1:]):
    if what.endswith("live ..."):
        others[float(what.split()[0])] = ((all_b - all_a) - (ours_b - ours_a)) / (t_b - t_a)
per_rate = load.groupby("rate", sort=False).first()[["verdict", "live_busiest", "sim_busiest"]]
per_rate["other processes (cores)"] = pd.Series(others).map("{:.2f}".format)
print()
print(per_rate.to_string())

# %% [markdown]
# The figure: each operation's p50 and p99 against the offered rate, live and sim, with the health
# threshold; and the busy fraction of each run's busiest resource beside the CPU that other processes
# took from the two cores during the live run.

# %%
fig, axes = plt.subplots(1, len(OPS) + 1, figsize=FIGSIZE, dpi=DPI)
for ax, op in zip(axes, OPS, strict=False):
    g = load[load["op"] == op]
    for side, color in (("live", "C0"), ("sim", "C1")):
        for q, ls in (("p50", "-"), ("p99", "--")):
            ax.plot(g["rate"], 1e3 * g[f"{side}_{q}"], ls=ls, marker="o", color=color, label=f"{side} {q}")
    ax.axhline(1e3 * HEALTHY_P99, color="C3", ls=":", label="healthy: p99 < 100 ms")
    ax.set(title=op, xlabel="offered rate (req/s)", yscale="log", ylim=(0.5, 2000), xticks=list(RATES))
    ax.grid(alpha=0.3)
axes[0].set_ylabel("latency from scheduled start (ms)")
axes[0].legend(fontsize=7, loc="upper left")
busy = pd.DataFrame({side: per_rate[f"{side}_busiest"].str.rsplit(" ", n=1).str[1].str.rstrip("%").astype(float)
                     for side in ("live", "sim")})
busy["other processes"] = 100 * pd.Series(others) / psutil.cpu_count()
busy.index = [f"{r:g} req/s\n{per_rate.loc[r, 'verdict']}" for r in busy.index]
bars = busy.plot.bar(ax=axes[-1], color=["C0", "C1", "grey"], rot=0, width=0.75)
for container, side in zip(bars.containers, ("live", "sim"), strict=False):
    for rect, rate in zip(container, per_rate.index, strict=True):
        axes[-1].annotate(per_rate.loc[rate, f"{side}_busiest"].rsplit(" ", 1)[0], (rect.get_x() + rect.get_width() / 2,
                          rect.get_height()), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                          rotation=90, fontsize=7)
axes[-1].set(title="busiest resource of each run", ylabel="% busy (others: % of all cores)",
             ylim=(0, 2 * max(busy.max().max(), 10)))
axes[-1].legend(fontsize=7, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# What the table and the figure say, computed from this run:

# %%
# NBVAL_IGNORE_OUTPUT
SAME = {"coordinator": "coordinator-cpu", "redis-server": "registry-server", "nats-server": "messaging-server"}
err = load.assign(p50=(load["sim_p50"] - load["live_p50"]) / load["live_p50"],
                  p99=(load["sim_p99"] - load["live_p99"]) / load["live_p99"])
for rate, g in err.groupby("rate", sort=False):
    worst = g.loc[g["live_p99"].idxmax()]
    live_res, sim_res = (g[f"{side}_busiest"].iloc[0].rsplit(" ", 1)[0] for side in ("live", "sim"))
    print(f"{rate:g} req/s: {g['verdict'].iloc[0]}; sim vs live p50 {g['p50'].min():+.0%} to {g['p50'].max():+.0%}, "
          f"p99 {g['p99'].min():+.0%} to {g['p99'].max():+.0%}; slowest live p99 ~{1e3 * worst['live_p99']:.1f} ms "
          f"({worst['op']}); busiest live {g['live_busiest'].iloc[0]}, sim {g['sim_busiest'].iloc[0]} "
          f"({'the same resource' if SAME.get(live_res) == sim_res else 'a different resource'}); other "
          f"processes used ~{others[rate]:.2f} of {psutil.cpu_count()} cores during the live run")
agree = (load["live_healthy"] == load["sim_healthy"]).all()
print(f"\nlive and sim {'agree on every operation' if agree else 'DISAGREE'} about health at "
      f"{', '.join(f'{r:g}' for r in RATES)} req/s")

# %%
shutil.rmtree(workdir)         # our calibration file (validate_load stopped its servers after each run)
print("cleaned up:", not workdir.exists())

# %% [markdown]
# ## Answer
#
# **At a moderate rate the calibrated simulation agrees with live; at a higher one the verdict hinges on
# something neither can see.** The simulator queues work where a live run spends it — the coordinator
# process's one core (per call, per row, per message, per fan-out, per delivery, per generator operation
# and per target, measured as `process_time` around batches), Redis (its own per-command time from
# `INFO commandstats`) and NATS (the fan-out slope) — shares the machine's cores between the three (each
# server's process CPU measured by the calibration) and adds the measured cost of idleness (a server
# and a timer that wake late after 0.5–50 ms gaps, and the CPU that waking costs). In six runs of this comparison on this VM, at
# 150 req/s live and sim were both healthy every time, the sim's p50s within −30 % to +60 % of live
# (usually a little optimistic) and its p99s within −40 % to +70 %, all a few milliseconds. At 400 req/s
# both stayed healthy while the machine was quiet, but in the runs where other processes took about one
# of the two cores the live p99s rose to 90–170 ms and the verdict became *disagree*: on this shared
# 2-core VM other processes compete for the cores, and neither the calibration nor the simulation can
# see them (the table above shows how much CPU they took during each live run), which is why the live
# p99 is noisy from run to run. The busiest resource is the coordinator process, live in every run and
# in sim in all but one earlier run (where the calibration put the fan-out's cost per message on NATS
# instead: a noisy split, since fixed by taking NATS' share from a fan-out nobody listens to); it is far
# from saturated here. Before the wake-up CPU was modelled, the simulated coordinator CPU was busy only a
# quarter to two thirds of what psutil measured live at 150 req/s; with it, 0.7–1.0 at 50 to 500 req/s
# in the runs behind the README's table. So trust the calibrated sim for medians and for the verdict,
# give its p99s a margin, re-calibrate on the machine you care about, and confirm the rates that matter
# live with `mcastlab calibrate --validate-load` on a quiet machine. (Done that way for the shipped
# calibration — 20 s per run at 50 to 650 req/s on this VM — live and sim were both healthy from 50 to
# 500 req/s and both overloaded at 600 and 650; at 550 the sim failed (enumerate and multicast p99 158
# and 234 ms, over 2,988 and 1,968) where live just passed (multicast p99 96 ms): near the knee the sim
# errs a little on the safe side; a later run from a clean checkout, 50 to 600 req/s, agreed on every operation at every
# rate, live failing from 550 as the sim did. The README's "What the simulator models" has the table.)
