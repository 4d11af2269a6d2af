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
# # 06 · Failure drills: outages and server kills
#
# **Question:** *When the messaging server or the registry goes away for a while — a 30 s outage, or
# a real `nats-server` / `redis-server` killed and restarted — what do multicast `failed` counts, the
# expiry lag and the targeting audit show, and how does the system recover?*
#
# Part 1 declares outage windows as data in the IoT scenario and runs it in SimPy virtual time on the
# simulated servers of `notebooks/sim-model.yaml` (deterministic: every number is checked by nbval). Part 2 kills and restarts real local servers
# under a small live fleet (wall-clock: those outputs vary and are not compared).

# %%
# %matplotlib inline
import asyncio
import contextlib
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml

from mcastlab import Config, Coordinator
from mcastlab.backends import NatsMessaging, RedisRegistry
from mcastlab.errors import McastlabError, UnknownIdentityError
from mcastlab.measure import format_table
from mcastlab.servers import servers
from mcastlab.sim.spec import SimSpec
from mcastlab.workloads import load_scenario, run_scenario

SEED = 7
rng = np.random.default_rng(SEED)

HERE = next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "sim-model.yaml").is_file())
SIM = yaml.safe_load((HERE / "sim-model.yaml").read_text())   # the simulated servers (pinned, see the file)
SCENARIO = HERE.parent / "scenarios" / "iot-device-management.yaml"
DEVICES = 2_000                # part 1: sensors (60 s heartbeat, 300 s TTL, as in the spec)
DURATION = 1_000.0             # part 1: seconds of virtual time
MESSAGING_OUTAGE = (200.0, 30.0)   # part 1: (start, duration) of the NATS outage
REGISTRY_OUTAGE = (650.0, 30.0)    # part 1: (start, duration) of the Redis outage
DEATHS = {"fraction": 0.05, "start": 300, "end": 500}   # part 1: sensors that die, so expiry is exercised

LIVE_DEVICES = 20              # part 2: live devices (each with an inbox agent)
LIVE_TTL, LIVE_HEARTBEAT = 2.0, 0.5   # part 2: seconds
LIVE_TICK = 0.25               # part 2: one ack-mode multicast to everyone every 0.25 s
KILLS = [("nats", 2.0, 2.5), ("redis", 7.0, 2.0)]   # part 2: (server, kill at, restart after) seconds
LIVE_END = 13.0
FIGSIZE, DPI = (10, 3.4), 80
pd.set_option("display.width", 160)
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets

# %% [markdown]
# ## Part 1: outage windows in simulation
#
# A scenario's `faults:` list declares failures as data. An `outage` of `messaging` or `registry` makes
# the simulated server unreachable for `duration` seconds from `at` (connections fail after the
# backend's connect timeout); a messaging outage also drops every device's subscription, and at its
# end all devices reconnect — re-register — at once: the reconnect storm. Commands are sent in `ack`
# mode (a restart must reach the device), and 5 % of the sensors die so that expiry is exercised.

# %%
faults = [{"kind": "outage", "target": "messaging", "at": MESSAGING_OUTAGE[0], "duration": MESSAGING_OUTAGE[1]},
          {"kind": "outage", "target": "registry", "at": REGISTRY_OUTAGE[0], "duration": REGISTRY_OUTAGE[1]}]
scenario = load_scenario(SCENARIO, {
    "seed": SEED, "duration": DURATION, "warmup": 60, "workload.devices": DEVICES, "workload.deaths": DEATHS,
    "workload.warehouse_restart": 0.1, "workload.restart_downtime": 5, "config.delivery_mode": "ack",
    "faults": faults, "sim": SIM,
})
run = run_scenario(scenario, progress=False)
print(format_table(run.targets))

# %% [markdown]
# Three targets fail, all because of the outages. To see what happened, cut the run into windows:
# before, during and after each outage.

# %%
m0, m1 = MESSAGING_OUTAGE[0], sum(MESSAGING_OUTAGE)
r0, r1 = REGISTRY_OUTAGE[0], sum(REGISTRY_OUTAGE)
edges = [0.0, m0, m1, r0, r1, DURATION + 1]
names = ["before", "NATS down", "between", "Redis down", "after"]


def window(t):
    return pd.cut(t, edges, labels=names, right=False)


ops = run.ops.assign(window=window(run.ops["t_start"]))
by_op = ops.pivot_table(index="window", columns="op", values="ok", aggfunc=lambda s: int((~s).sum()),
                        observed=False).reindex(columns=["register", "heartbeat", "enumerate", "multicast"])
print("operations that raised (all BackendUnavailableError):")
print(by_op.to_string())
mc = run.multicasts.assign(window=window(run.multicasts["t_start"]))
audit = mc.groupby("window", observed=False)[["targeted", "delivered", "failed", "stale", "wrong", "missed",
                                              "uncertain"]].sum()
audit.insert(0, "multicasts", mc.groupby("window", observed=False).size())
print("\nmulticasts that ran, and the targeting audit:")
print(audit.to_string())
statuses = run.deliveries.merge(mc[["message_id", "window"]], on="message_id")
print("\nper-recipient status:")
print(statuses.pivot_table(index="window", columns="status", values="identity", aggfunc="size",
                           fill_value=0, observed=False).to_string())

# %% [markdown]
# * **NATS down:** the registry still answers, so every multicast still *targets* the right sensors,
#   but each send fails (`unavailable`) after the retries, and the audit counts those recipients as
#   `missed`. Nothing is `stale` or `wrong`: targeting stays exact. Heartbeats are unaffected.
# * **Redis down:** enumerates and multicasts raise `BackendUnavailableError` before any fan-out (there is
#   nobody to target) and heartbeats fail.
# * **After:** everything works again at once. The `uncertain` recipients are ones the audit will not
#   judge: their last heartbeat failed during the outage, so the ground truth cannot know whether the
#   registry saw it, and they are counted apart rather than guessed.
#
# How did recovery look from the devices' and the sweeper's side?

# %%
registers = ops[ops["op"] == "register"]
storm = registers[(registers["t_start"] >= m1) & (registers["t_start"] < m1 + 1.0)]["latency_s"]
usual = registers[(registers["t_start"] >= m1 + 10) & (registers["t_start"] < r0)]["latency_s"]
cpu = SimSpec.from_dict(SIM).cpu                     # the coordinator's CPU costs in sim-model.yaml
per_register = cpu.call.get("register", cpu.call["default"]) + cpu.per_op   # the call + the generator's work
print(f"reconnect storm: {len(storm):,} registers in the second after NATS returned, "
      f"p50 {1e3 * storm.median():.2f} ms, max {1e3 * storm.max():.2f} ms "
      f"(between the outages p50 {1e3 * usual.median():.2f} ms, max {1e3 * usual.max():.2f} ms)")
print(f"  the storm is {len(storm):,} x {1e6 * per_register:.0f} µs = {1e3 * len(storm) * per_register:.0f} ms "
      f"of work queued on the coordinator's one CPU")
ex = run.expirations.assign(window=window(run.expirations["deadline"]))
lag = ex.groupby("window", observed=False)["lag_s"].agg(["size", "median", "max"])
lag.columns = ["expiries", "lag p50 (s)", "lag max (s)"]
print("\nexpiry lag, by when the deadline fell:")
print(lag.round(4).to_string())
print(f"\nall {len(ex)} dead sensors expired exactly once: {ex['identity'].is_unique and len(ex) == len(run.truth['deaths'])}")

# %% [markdown]
# The reconnect storm is slow because every register queues on the coordinator's one CPU: the last one
# waits for all the others' client work (the registry server, at a few µs per register, is never the
# bottleneck). Registers between the outages are mostly warehouse restarts, a few hundred devices
# re-registering at once: the same queue, shorter.
#
# Deaths whose deadline fell while Redis was down could not be detected until it came back: their lag
# is the rest of the outage (up to 25 s), then the sweeper claims them all in its first round after the
# outage. Nobody expired *wrongly*: with a 60 s heartbeat and a 300 s TTL a live sensor survives any
# registry outage shorter than TTL − heartbeat = 240 s.
#
# ## Part 2: killing real servers
#
# Now a live fleet against real `redis-server` and `nats-server`: 20 devices register, listen on their
# inbox and heartbeat every 0.5 s (TTL 2 s); a device whose heartbeat is refused as unknown registers
# again. An operator multicasts to everyone in `ack` mode every 0.25 s. We SIGKILL `nats-server`,
# restart it, then SIGKILL `redis-server` (which runs without persistence) and restart it.

# %%
async def live_drill(srv):
    coord = Coordinator(Config(default_ttl=LIVE_TTL, send_timeout=0.5, send_retries=1, sweep_interval=0.2,
                               max_identities=None),
                        registry=RedisRegistry(srv["redis"].url, prefix="drill:"),
                        messaging=NatsMessaging(srv["nats"].url, prefix="drill"), name="drill")
    expired, multicasts, beats = [], [], []
    coord.add_listener(lambda ev: expired.append(ev) if type(ev).__name__ == "ExpirationEvent" else None)
    await coord.open()
    t0 = coord.runtime.now()

    def now():
        return coord.runtime.now() - t0

    async def device(i):
        name, md = f"dev-{i:02d}", {"status": "online"}
        async with coord.inbox(name):                      # the agent acknowledges on receipt
            await coord.register(name, md)
            while True:
                await asyncio.sleep(LIVE_HEARTBEAT)
                try:
                    await coord.heartbeat(name)
                    beats.append((now(), "ok"))
                except UnknownIdentityError:               # the registry forgot us: register again
                    try:
                        await coord.register(name, md)
                        beats.append((now(), "re-registered"))
                    except McastlabError as exc:
                        beats.append((now(), type(exc).__name__))
                except McastlabError as exc:
                    beats.append((now(), type(exc).__name__))

    async def chaos():
        for kind, at, down in KILLS:
            await asyncio.sleep(at - now())
            srv[kind].kill()                               # SIGKILL: a crash, no goodbye
            await asyncio.sleep(down)
            await asyncio.to_thread(srv[kind].restart)     # same port, fresh process

    tasks = [asyncio.create_task(device(i)) for i in range(LIVE_DEVICES)]
    tasks.append(asyncio.create_task(chaos()))
    await asyncio.sleep(LIVE_TICK)
    while now() < LIVE_END:
        t = now()
        try:
            res = await coord.multicast(None, b"ping", mode="ack")
            counts = pd.Series(res.statuses, dtype="string").value_counts().to_dict()
            multicasts.append({"t": t, "targeted": res.targeted, "delivered": res.delivered, "failed": res.failed,
                               "error": "", **counts})
        except McastlabError as exc:
            multicasts.append({"t": t, "targeted": 0, "delivered": 0, "failed": 0, "error": type(exc).__name__})
        await asyncio.sleep(max(0.0, LIVE_TICK - (now() - t)))
    for task in tasks:
        task.cancel()
    await coord.close()
    return pd.DataFrame(multicasts).fillna(0), pd.DataFrame(beats, columns=["t", "result"]), expired


with servers("redis", "nats") as srv:
    live_mc, live_beats, live_expired = await live_drill(srv)

# %%
# NBVAL_IGNORE_OUTPUT
phases = [0.0, 2.0, 4.5, 7.0, 9.0, LIVE_END + 1]
labels = ["healthy", "NATS killed", "NATS restarted", "Redis killed", "Redis restarted"]
live_mc["phase"] = pd.cut(live_mc["t"], phases, labels=labels, right=False)
cols = [c for c in ("targeted", "delivered", "failed", "unavailable", "timeout") if c in live_mc]
summary = live_mc.groupby("phase", observed=False)[cols].sum()
summary.insert(0, "multicasts", live_mc.groupby("phase", observed=False).size())
summary["raised"] = live_mc[live_mc["error"] != ""].groupby("phase", observed=False).size()
print(summary.fillna(0).astype(int).to_string())
live_beats["phase"] = pd.cut(live_beats["t"], phases, labels=labels, right=False)
print()
print(live_beats.pivot_table(index="phase", columns="result", values="t", aggfunc="size", fill_value=0,
                             observed=False).to_string())
print(f"\nexpiration events: {len(live_expired)}")

# %% [markdown]
# The stored run above is typical; the robust facts, checked on every run (with a margin of half a
# second around each kill and restart):

# %%
def interior(df, start, end, margin=0.5):
    return df[(df["t"] >= start + margin) & (df["t"] < end - 0.1)]


nats_down = interior(live_mc, 2.0, 4.5)
redis_down = interior(live_mc, 7.0, 9.0)
recovered = interior(live_mc, 11.0, LIVE_END)
print("NATS killed: every multicast still targets all devices:", bool((nats_down["targeted"] == LIVE_DEVICES).all()))
print("NATS killed: every recipient failed, none delivered:", bool((nats_down["delivered"] == 0).all()))
print("Redis killed: multicasts raise before any fan-out:", bool((redis_down["error"] != "").all()))
print("Redis restarted: all devices registered again and delivered to:",
      bool((recovered["delivered"] == LIVE_DEVICES).all()))
print("a restart of a non-persistent Redis loses registrations without any expiration event:",
      len(live_expired) == 0 and bool((live_beats["result"] == "re-registered").any()))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
mcw = run.multicasts
hit = mcw[mcw["failed"] > 0]
ax1.scatter(mcw["t_start"], mcw["delivered"], s=8, color="C2", label="delivered")
ax1.scatter(hit["t_start"], hit["failed"], s=12, color="C3", label="failed")
ax1.set(xlabel="virtual time (s)", ylabel="recipients per multicast", title="sim: outage windows", ylim=(0, 330))
lag_ax = ax1.twinx()
lag_ax.scatter(ex["deadline"], ex["lag_s"], s=14, marker="x", color="C4", label="expiry lag (s)")
lag_ax.set(ylabel="expiry lag (s)", ylim=(0, 33))
for (start, dur), name in ((MESSAGING_OUTAGE, "NATS"), (REGISTRY_OUTAGE, "Redis")):
    ax1.axvspan(start, start + dur, color="grey", alpha=0.25)
    ax1.text(start + dur + 8, 0.93, f"{name}\ndown", transform=ax1.get_xaxis_transform(), fontsize=8, va="top")
h1, l1 = ax1.get_legend_handles_labels()
h2, l2 = lag_ax.get_legend_handles_labels()
ax1.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower right")
ax2.plot(live_mc["t"], live_mc["delivered"], drawstyle="steps-post", color="C2", label="delivered")
ax2.plot(live_mc["t"], live_mc["failed"], drawstyle="steps-post", color="C3", label="failed")
ax2.plot(live_mc["t"], live_mc["targeted"], drawstyle="steps-post", color="C0", ls=":", label="targeted")
for kind, at, down in KILLS:
    ax2.axvspan(at, at + down, color="grey", alpha=0.25)
    ax2.text(at + 0.1, 0.93, f"{kind}\nkilled", transform=ax2.get_xaxis_transform(), fontsize=8, va="top")
ax2.set(xlabel="wall-clock time (s)", ylabel="recipients per multicast", title="live: servers killed",
        ylim=(-0.5, LIVE_DEVICES * 1.35))
ax2.legend(fontsize=7, loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Answer
#
# **A messaging outage shows up as `failed`, not as wrong targeting**: the registry still answers, so
# each multicast targets exactly the live matching devices, every send fails as `unavailable` after its
# retries (2,281 recipients in 9 multicasts during the 30 s NATS outage in sim; every recipient while
# the live `nats-server` was dead), and the audit reports them as `missed` — never `stale` or `wrong`.
# Heartbeats and expiry carry on. **A registry outage stops the pattern before the fan-out**:
# enumerates and multicasts raise `BackendUnavailableError`, heartbeats fail, and the expiry lag of
# devices whose deadline fell inside the window grows to the rest of the outage (up to ~25 s) — they are
# claimed, exactly once, in the sweeper's first round after Redis returns, and no live device expires
# because a 30 s outage is far below TTL − heartbeat (240 s). **Recovery is immediate and needs no
# operator**: after NATS returns, nats-py reconnects and re-subscribes the inboxes and multicasts
# deliver to all again within a fraction of a second (in sim the devices' reconnect storm of about 1,900
# registers queues on the coordinator's CPU and takes registers to about 100 ms at the median until it
# drains, as computed above); after a restarted Redis (without persistence) the registry is empty — enumerate
# returns nobody for up to one heartbeat, **without a single expiration event** — until each device's
# next heartbeat is refused as unknown and it registers again, within one heartbeat interval. So alert
# on `failed` and on `BackendUnavailableError`, not on expirations, and enable Redis persistence (or
# accept one heartbeat of empty answers) if a restart must not forget everyone.
