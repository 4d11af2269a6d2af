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
# # 02 · IoT capacity planning: 1,000 to 1,000,000 sensors
#
# **Question:** *Sensors heartbeat every 60 s with a 5-minute TTL; operators enumerate rings and
# warehouses and push firmware to the sensors on an old version. As the fleet grows from 1,000 to
# 1,000,000 sensors and the heartbeat interval shrinks, when do enumerate and fan-out latencies miss
# the spec's targets — and which resource gives out first?*
#
# The spec's production targets: **enumerate 1,000 identities < 20 ms**, **multicast to 100
# identities < 100 ms**, and the `SlowEnumerateLatency` alert fires when **any enumerate's p99 > 20 ms**.
#
# Everything runs in SimPy virtual time on simulated Redis-like (registry) and NATS-like (messaging)
# servers, using `mcastlab.sim`'s scale path: a fleet is a set of numpy columns inside the simulated
# registry, heartbeats arrive in pipelined batches (as from gateways), and deliveries are logged without
# a process per sensor — so a million sensors simulate in seconds.

# %%
# %matplotlib inline
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import simpy
import yaml

from mcastlab import Config, Coordinator
from mcastlab.errors import McastlabError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import CohortFleet, make_sim_backends

SEED = 7
rng = np.random.default_rng(SEED)
HERE = next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "sim-model.yaml").is_file())
SIM = yaml.safe_load((HERE / "sim-model.yaml").read_text())   # the simulated servers (pinned, see the file)

FLEET_SIZES = [1_000, 10_000, 100_000, 1_000_000]   # sweep 1, at the spec's heartbeat
HEARTBEAT = 60.0                                    # seconds (the spec's IoT scenario)
HEARTBEATS = [30.0, 10.0, 2.0, 1.0, 0.8]           # sweep 2, at the largest fleet
TTL_FACTOR = 5                                      # TTL = 5 heartbeats (60 s -> 5 minutes, as in the spec)
WAREHOUSES = 8
FIRMWARE = {"1.2.3": 0.1, "1.2.10": 0.3, "1.3.0": 0.6}  # version -> share of the fleet
GATEWAY_BATCH = 2_000                               # heartbeats pipelined per registry round trip
QUERIES_PER_STREAM = 20                             # measured operations of each kind per run
WINDOW_MIN = 10.0                                   # settling time after registration, and shortest window (s)

ENUMERATE_TARGET = 0.020                            # spec: enumerate 1,000 < 20 ms; alert: p99 > 20 ms
MULTICAST_TARGET = 0.100                            # spec: multicast to 100 < 100 ms
FIGSIZE, DPI = (10, 3.6), 80
pd.set_option("display.width", 160)

# What each measured operation does. "ring" splits the fleet into a canary ring (the first 100 sensors),
# a beta ring (the next 900) and general availability, so two of the four do not grow with the fleet.
STREAMS = {
    "enumerate 1,000":        ("enumerate", 'ring in ["canary", "beta"]'),
    "enumerate outdated (1 warehouse)": ("enumerate", 'location == "warehouse-0" and firmware_version < v"1.2.10"'),
    "multicast 100":          ("multicast", 'ring == "canary"'),
    "firmware push (1 warehouse)": ("multicast", 'location == "warehouse-1" and firmware_version < v"1.2.10"'),
}

# %% [markdown]
# ## The model
#
# The simulated servers are data: `notebooks/sim-model.yaml` (loaded as `SIM` above) pins the model the
# notebooks assume rather than relying on the library's defaults, so each notebook states its
# assumptions (close to a Redis 7 + NATS 2 pair over loopback; notebook 05 shows how to calibrate the
# models on your machine):
#
# * **registry** — one single-threaded server (FCFS queue). Each operation costs *service* time on the
#   server (queued) plus *network* time (client, round trip and decoding; not queued). Per-item terms
#   make a query's cost grow with the rows it returns and a batch's with its size.
# * **messaging** — one pipeline: every message costs `per_message` of server time; a publish fan-out
#   ends with one flush round trip; delivery to a subscriber takes `delivery`.

# %%
service, network = SIM["registry"]["service"], SIM["registry"]["network"]
model = pd.DataFrame([
    ("registry", "heartbeat (per item of a batch)", service["batch"]["per_item"], network["batch"]["per_item"]),
    ("registry", "enumerate, per row returned", service["query"]["per_item"], network["query"]["per_item"]),
    ("registry", "enumerate, fixed part", service["query"]["value"], network["query"]["median"]),
    ("messaging", "publish, per message", SIM["messaging"]["per_message"], 0.0),
], columns=["server", "cost", "server time (µs)", "client + network (µs)"])
model[["server time (µs)", "client + network (µs)"]] *= 1e6
model.round(1)

# %% [markdown]
# ## One run
#
# `simulate(n, heartbeat)` builds a fleet of `n` sensors (ring × warehouse × firmware metadata), starts
# the cohort heartbeat driver (TTL = 5 heartbeats, gateways pipelining 2,000 heartbeats per batch),
# waits until every sensor has registered and the boot backlog has drained, then runs the four
# operation streams as independent Poisson processes over a measurement window (one heartbeat
# interval, at least 10 s) and records each operation's latency. Multicasts use `publish` mode
# (delivered = accepted by the messaging server). It also reports how busy each server was.

# %%
def simulate(n, heartbeat, seed=SEED):
    g_backends, g_fleet, g_driver, g_ops = np.random.default_rng([seed, n, round(heartbeat * 1000)]).spawn(4)
    rt = SimPyRuntime(simpy.Environment())
    registry, messaging = make_sim_backends(SIM, rng=g_backends)
    ttl = TTL_FACTOR * heartbeat
    coord = Coordinator(Config(default_ttl=ttl, max_identities=None), registry=registry,
                        messaging=messaging, runtime=rt, name="planner")

    versions = list(FIRMWARE)
    groups = [{"status": "online", "ring": ring, "location": f"warehouse-{w}", "firmware_version": v}
              for ring in ("canary", "beta", "ga") for w in range(WAREHOUSES) for v in versions]
    i = np.arange(n)
    ring = np.where(i < 100, 0, np.where(i < 1000, 1, 2))
    warehouse = g_fleet.integers(0, WAREHOUSES, n)
    version = g_fleet.choice(len(versions), n, p=list(FIRMWARE.values()))
    fleet = registry.add_fleet("sensor-", n, groups, (ring * WAREHOUSES + warehouse) * len(versions) + version,
                               width=7)
    driver = CohortFleet(registry, fleet, ttl=ttl, heartbeat=heartbeat, rng=g_driver,
                         cohorts=max(1, math.ceil(n / GATEWAY_BATCH)))

    start = 1.2 * heartbeat + WINDOW_MIN                     # every cohort registered, boot backlog drained
    window = max(heartbeat, WINDOW_MIN)
    rows = []

    async def one(label, op, flt):
        t0 = rt.now()
        try:
            res = await (coord.enumerate(flt) if op == "enumerate" else coord.multicast(flt, b"firmware"))
            matched = len(res) if op == "enumerate" else res.targeted
            rows.append((label, op, matched, rt.now() - t0, True))
        except McastlabError:
            rows.append((label, op, 0, rt.now() - t0, False))

    async def stream(label, op, text, g):
        flt = coord.compile(text)
        await rt.sleep(start - rt.now())
        while True:
            await rt.sleep(float(g.exponential(window / QUERIES_PER_STREAM)))
            if rt.now() >= start + window:
                return
            rt.spawn(one(label, op, flt))

    async def main():
        async with coord:
            driver.start()
            for (label, (op, text)), g in zip(STREAMS.items(), g_ops.spawn(len(STREAMS)), strict=True):
                rt.spawn(stream(label, op, text, g))
            await rt.sleep(start - rt.now())
            busy = registry.server.busy, messaging.server.busy
            await rt.sleep(window)
            util = ((registry.server.busy - busy[0]) / window, (messaging.server.busy - busy[1]) / window)
            await rt.sleep(2.0)                              # let the last operations finish
            driver.stop()
            return util

    util = rt.run(main())
    ops = pd.DataFrame(rows, columns=["stream", "op", "matched", "latency_s", "ok"])
    ops["n"], ops["heartbeat_s"] = n, heartbeat
    info = {"n": n, "heartbeat_s": heartbeat, "registry busy": util[0], "messaging busy": util[1],
            "heartbeat rate /s": n / heartbeat, "failed heartbeat batches": driver.stats.failed_batches,
            "expired": coord.expired_total, "query wait (mean ms)": 1e3 * registry.stats["query"].mean_wait}
    return ops, info


def p99_table(ops):
    """p99 latency per stream and setting, the rows each returned, and the verdict against the targets."""
    g = ops.groupby(["n", "heartbeat_s", "stream"], sort=False)
    t = g.agg(matched=("matched", "median"), ops=("ok", "size"), errors=("ok", lambda s: int((~s).sum())),
              p99_ms=("latency_s", lambda s: 1e3 * np.percentile(s, 99))).reset_index()
    limit = np.where(t["stream"].str.startswith("enumerate"), ENUMERATE_TARGET,
                     np.where(t["stream"] == "multicast 100", MULTICAST_TARGET, np.nan))
    t["target_ms"] = 1e3 * limit
    t["verdict"] = np.where(np.isnan(limit), "-", np.where(t["p99_ms"] < t["target_ms"], "PASS", "FAIL"))
    t["matched"] = t["matched"].astype(int)
    t["p99_ms"] = t["p99_ms"].round(2)
    t["p99 (verdict)"] = [f"{v:.1f} ms" + ("" if k == "-" else f" {k}") for v, k in zip(t["p99_ms"], t["verdict"])]
    return t

# %% [markdown]
# ## Sweep 1: fleet size, at a 60 s heartbeat

# %%
runs = [simulate(n, HEARTBEAT) for n in FLEET_SIZES]
ops_size = pd.concat([r[0] for r in runs], ignore_index=True)
info_size = pd.DataFrame([r[1] for r in runs])
by_size = p99_table(ops_size)
print("rows returned / targeted:")
print(by_size.pivot(index="stream", columns="n", values="matched").loc[list(STREAMS)].to_string())
print("\np99 latency and verdict against the spec's targets:")
print(by_size.pivot(index="stream", columns="n", values="p99 (verdict)").loc[list(STREAMS)].to_string())

# %% [markdown]
# The two operations whose answer has a fixed size — enumerate the 1,000 sensors of the canary and beta
# rings, multicast to the 100 canaries — stay inside their targets from 1,000 to 1,000,000 sensors:
# the registry's secondary indexes make a query cost proportional to the rows it returns, not to the
# fleet. (At 1,000,000 they get slower, not because of the fleet but because they sometimes queue behind
# a big query on the single-threaded registry, or behind a 12,000-message firmware push in the messaging
# pipeline.) The queries that grow with the fleet do not stay inside: enumerating one warehouse's
# outdated sensors returns ~1.2 % of the fleet and crosses the 20 ms alert threshold between 100,000
# and 1,000,000 sensors. Meanwhile the servers are nearly idle:

# %%
info_size["heartbeat rate /s"] = info_size["heartbeat rate /s"].round().astype(int)
info_size.round(4)

# %% [markdown]
# ## Sweep 2: heartbeat interval, at 1,000,000 sensors
#
# Shorter heartbeats multiply the registry's write load. At some point the single-threaded server runs
# out of time.

# %%
runs_hb = [simulate(FLEET_SIZES[-1], hb) for hb in HEARTBEATS]
ops_hb = pd.concat([r[0] for r in runs_hb], ignore_index=True)
info_hb = pd.DataFrame([r[1] for r in runs_hb])
by_hb = p99_table(ops_hb)
table_hb = by_hb.pivot(index="heartbeat_s", columns="stream", values="p99 (verdict)")[list(STREAMS)]
servers = info_hb.set_index("heartbeat_s")[["registry busy", "messaging busy", "query wait (mean ms)"]].round(3)
print(table_hb.sort_index(ascending=False).to_string())
print()
print(servers.join(info_hb.set_index("heartbeat_s")[["failed heartbeat batches", "expired"]])
      .sort_index(ascending=False).to_string())

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
for stream in STREAMS:
    s = by_size[by_size["stream"] == stream]
    ax1.plot(s["n"], s["p99_ms"], marker="o", label=stream)
ax1.axhline(1e3 * ENUMERATE_TARGET, color="C3", ls="--", lw=1, label="20 ms (enumerate target / alert)")
ax1.axhline(1e3 * MULTICAST_TARGET, color="C3", ls=":", lw=1, label="100 ms (multicast-100 target)")
ax1.set(xscale="log", yscale="log", xlabel="sensors (60 s heartbeat)", ylabel="p99 latency (ms)",
        title="sweep 1: fleet size")
ax1.legend(fontsize=7, loc="upper left")

rate = info_hb["heartbeat rate /s"]
ax2.plot(rate, info_hb["registry busy"], marker="o", color="C4", label="registry server busy")
ax2.plot(rate, info_hb["messaging busy"], marker="o", color="C5", label="messaging server busy")
ax2.axhline(1.0, color="grey", lw=1)
ax2.set(xscale="log", xlabel="heartbeats per second (1,000,000 sensors)", ylabel="utilisation",
        title="sweep 2: heartbeat interval")
ax3 = ax2.twinx()
e1k = by_hb[by_hb["stream"] == "enumerate 1,000"]
ax3.plot(e1k["n"] / e1k["heartbeat_s"], e1k["p99_ms"], marker="s", color="C0", ls="--",
         label="enumerate 1,000 p99 (ms)")
ax3.axhline(1e3 * ENUMERATE_TARGET, color="C3", ls="--", lw=1)
ax3.set(yscale="log", ylabel="enumerate 1,000 p99 (ms)")
h1, l1 = ax2.get_legend_handles_labels()
h2, l2 = ax3.get_legend_handles_labels()
ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Where the time goes
#
# For a large enumerate, split the modelled latency into its parts: the registry's server time is
# 0.5 µs per row, the client side (transfer and decoding) 8 µs per row. Queueing on the server is the
# third part, and it is what explodes when the heartbeat load approaches the server's capacity.

# %%
rows_returned = int(by_size.query("n == 1_000_000 and stream == 'enumerate outdated (1 warehouse)'")["matched"].iloc[0])
parts = pd.Series({
    "server time (0.5 µs/row + 10 µs)": 1e-5 + 5e-7 * rows_returned,
    "client + network (8 µs/row + 100 µs)": 1e-4 + 8e-6 * rows_returned,
}) * 1e3
print(f"enumerate returning {rows_returned:,} rows, at 1,000,000 sensors (ms):")
print(parts.round(2).to_string())
capacity = 1 / (SIM["registry"]["service"]["batch"]["per_item"] + 1e-5 / GATEWAY_BATCH)
print(f"registry capacity for heartbeats: {capacity:,.0f}/s of server time "
      f"-> 1,000,000 sensors saturate it at a {1_000_000 / capacity:.2f} s heartbeat")

# %% [markdown]
# ## Answer
#
# With the modelled Redis + NATS pair and the spec's 60 s heartbeat, **the fixed-size targets hold at
# every fleet size**: enumerating 1,000 sensors takes ~9 ms at p99 (13 ms at 1,000,000, from queueing
# behind big queries) and a multicast to 100 takes 1–7 ms, because indexed queries cost per row
# returned, not per sensor stored. **What breaks first is any query whose answer grows with the
# fleet**: one warehouse's outdated sensors (1.2 % of the fleet) take ~11 ms at 100,000 sensors but
# ~106 ms at 1,000,000 — failing the 20 ms enumerate alert — and a firmware push to them ~150 ms. That
# cost is on the **client side** (moving and decoding ~8 µs per row: 99 of those 106 ms), not the
# registry server, which is under 2 % busy. **The registry server saturates only under heartbeat
# load**: at ~0.8 µs of server time per pipelined heartbeat it tops out near 1.2 million heartbeats/s.
# 1,000,000 sensors are comfortable down to a 2 s heartbeat (43 % busy); at 1 s (83 %) queueing
# pushes even enumerate 1,000 and multicast 100 just past 20 ms; at 0.8 s the server is 100 % busy and
# every operation waits ~0.8 s behind heartbeats. To grow, page or count instead of enumerating large
# answers, shard the registry (e.g. by warehouse), and keep sensors ÷ heartbeat interval well under a
# million per second per Redis.
