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
# # 03 · User presence: rooms, 60 s TTLs and dropped users
#
# **Question:** *In a chat service where users sit in rooms with a 60 s presence TTL and heartbeat
# every 20 s, how fast does a room broadcast reach its members (per-member latency and the makespan
# to the last member), and how long does a user whose connection drops keep showing up as present?*
#
# Part 1 runs the shipped `scenarios/user-presence.yaml` (scaled down to run in seconds) through the
# scenario runner in SimPy virtual time, on the simulated Redis-like and NATS-like servers described in
# `notebooks/sim-model.yaml`: users join rooms of Zipf-distributed popularity, switch rooms,
# leave or drop; operators broadcast to rooms, announce to everyone and list room members. Part 2 drops
# users at known instants and measures how long each lingers, for the spec's 60 s TTL and two
# shorter settings.

# %%
# %matplotlib inline
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import simpy
import yaml

from mcastlab import Config, Coordinator
from mcastlab.measure import format_table
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import make_sim_backends
from mcastlab.workloads import load_scenario, run_scenario

SEED = 7
rng = np.random.default_rng(SEED)

HERE = next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "sim-model.yaml").is_file())
SIM = yaml.safe_load((HERE / "sim-model.yaml").read_text())   # the simulated servers (pinned, see the file)
SCENARIO = HERE.parent / "scenarios" / "user-presence.yaml"
USERS = 1_000                  # the shipped scenario has 5,000; fewer keep this notebook fast
ROOMS = 50
DURATION = 300.0               # seconds of virtual time
TTL = 60.0                     # presence TTL (the spec's chat example)
HEARTBEAT = 20.0               # seconds between presence heartbeats (±20 % jitter)

SETTINGS = [(60.0, 20.0), (30.0, 10.0), (15.0, 5.0)]   # part 2: (TTL, heartbeat) pairs to compare
DROPS = 300                    # part 2: users dropped per setting
FIGSIZE, DPI = (10, 3.4), 80
pd.set_option("display.width", 160)
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets

# %% [markdown]
# ## Part 1: the presence scenario
#
# `load_scenario` validates the YAML and applies overrides by dotted key; `run_scenario` returns tidy
# frames (`ops`, `deliveries`, `multicasts`, `expirations`, `population`) and the targets table. The
# run is seeded (`seed` in the file), so every number below is reproducible.

# %%
scenario = load_scenario(SCENARIO, {
    "seed": SEED, "duration": DURATION, "workload.users": USERS, "workload.rooms": ROOMS,
    "workload.ttl": TTL, "config.default_ttl": TTL, "workload.heartbeat.period": HEARTBEAT, "sim": SIM,
})
run = run_scenario(scenario, progress=False)
print(f"{scenario.name}: {USERS:,} users, {ROOMS} rooms, {DURATION:.0f} s virtual, seed {scenario.seed}")
print({k: v for k, v in run.manifest["counts"].items() if k in ("ops", "multicasts", "deliveries", "expirations")})
print()
print(format_table(run.targets))
verdicts = run.targets["verdict"].value_counts()
print(f"\n{verdicts.get('pass', 0)} targets pass, {verdicts.get('fail', 0)} fail, "
      f"{verdicts.get('insufficient', 0)} rest on too few samples to judge, {verdicts.get('no data', 0)} without data")

# %% [markdown]
# No target fails, and the targeting audit is clean: no message went to an expired user (`stale`),
# no present member was missed. Two targets cannot be judged at this scaled-down size and are reported
# as *insufficient* rather than passed: the dropped users' p99 needs at least 100 expiries, and the
# expiration-rate alert is defined over 5-minute windows, longer than this run after its 60 s warm-up
# (for that one the table's `n < 1` is misleading: the run's length, not the sample count, is short).
# The enumerate-1,000 target has no data because no room has that many members. Room sizes follow the
# Zipf popularity, so broadcasts range from empty rooms to a few dozen members; announcements go to
# everyone online.

# %%
mc = run.multicasts[run.multicasts["t_start"] >= run.warmup]
dl = run.deliveries[run.deliveries["t_sent"] >= run.warmup].merge(mc[["message_id", "stream"]], on="message_id")
per_stream = pd.DataFrame({
    "broadcasts": mc.groupby("stream").size(),
    "members p50": mc.groupby("stream")["targeted"].median(),
    "members max": mc.groupby("stream")["targeted"].max(),
    "delivery p50 (ms)": 1e3 * dl.groupby("stream")["latency_s"].median(),
    "delivery p99 (ms)": 1e3 * dl.groupby("stream")["latency_s"].quantile(0.99),
    "makespan p50 (ms)": 1e3 * mc.groupby("stream")["makespan_s"].median(),
    "makespan p99 (ms)": 1e3 * mc.groupby("stream")["makespan_s"].quantile(0.99),
})
print(per_stream.round(2).to_string())
print()
print("audit:", run.audit())

# %% [markdown]
# The makespan of a broadcast — from the moment it was scheduled to the last member's receipt — is the
# enumerate of the room, the fan-out (one publish per member through the messaging pipeline) and the
# delivery to the slowest member, so it grows with the room:

# %%
rooms = mc[(mc["stream"] == "room_message") & (mc["targeted"] > 0)]
fit = np.polyfit(rooms["targeted"], 1e3 * rooms["makespan_s"], 1)
print(f"room broadcast makespan ≈ {fit[1]:.2f} ms + {1e3 * fit[0]:.1f} µs per member "
      f"(least squares over {len(rooms):,} broadcasts)")

# %% [markdown]
# ## Part 2: how long a dropped user lingers
#
# A dropped user stops heartbeating but never unregisters, so it stays listed until its TTL runs out:
# between *TTL − heartbeat interval* and *TTL* after the drop, depending on when it last heartbeated.
# The registry never returns an identity past its deadline, and the coordinator's sweeper reports the
# expiry shortly after (it sleeps until the next deadline, and sweeps deadlines closer together than
# `Config.sweep_resolution`, 10 ms, in one round).
#
# We measure it directly: each user joins a room and heartbeats (±20 % jitter) until an instant drawn
# at random, then drops. For each dropped user we record the drop, its deadline (when queries stop
# returning it) and when the expiry event fired.

# %%
def drop_drill(ttl, heartbeat, n=DROPS, seed=SEED):
    """Drop ``n`` heartbeating users at random instants; return one row per user."""
    g_backends, g_users = np.random.default_rng([seed, round(ttl)]).spawn(2)
    rt = SimPyRuntime(simpy.Environment())
    registry, messaging = make_sim_backends(SIM, rng=g_backends)
    coord = Coordinator(Config(default_ttl=ttl, max_identities=None), registry=registry,
                        messaging=messaging, runtime=rt, name="presence")
    events, drops, heartbeats = {}, {}, [0]
    coord.add_listener(lambda ev: events.__setitem__(ev.identity, ev)
                       if type(ev).__name__ == "ExpirationEvent" else None)
    joins = g_users.uniform(0, heartbeat, n)
    drop_at = g_users.uniform(3 * ttl, 6 * ttl, n)
    jitter = g_users.uniform(-0.2, 0.2, (n, 64))

    async def user(i):
        name = f"user-{i:04d}"
        await rt.sleep(joins[i])
        await coord.register(name, {"room": f"room-{i % ROOMS:03d}", "status": "online"})
        k = 0
        while True:
            gap = heartbeat * (1 + jitter[i, k % 64])
            k += 1
            if rt.now() + gap >= drop_at[i]:
                await rt.sleep(drop_at[i] - rt.now())
                drops[name] = rt.now()        # the connection dies: no more heartbeats, no unregister
                return
            await rt.sleep(gap)
            await coord.heartbeat(name)
            heartbeats[0] += 1

    async def main():
        async with coord:
            await rt.gather(*[user(i) for i in range(n)])
            await rt.sleep(ttl + 1)           # every dropped user has expired by now

    rt.run(main())
    rows = [(name, t, events[name].deadline, events[name].t_detected) for name, t in drops.items()]
    df = pd.DataFrame(rows, columns=["identity", "t_drop", "deadline", "t_detected"])
    df["gone_after_s"] = df["deadline"] - df["t_drop"]          # queries stop returning it
    df["event_after_s"] = df["t_detected"] - df["t_drop"]       # the expiration event
    df["ttl_s"], df["heartbeat_s"] = ttl, heartbeat
    df["heartbeats_per_s_per_1k_users"] = 1000 / heartbeat
    return df


drills = pd.concat([drop_drill(ttl, hb) for ttl, hb in SETTINGS], ignore_index=True)
lag_ms = 1e3 * (drills["t_detected"] - drills["deadline"])
linger = drills.groupby(["ttl_s", "heartbeat_s"], sort=False).agg(
    users=("identity", "size"),
    min_s=("gone_after_s", "min"), mean_s=("gone_after_s", "mean"), p99_s=("gone_after_s", lambda s: s.quantile(0.99)),
    max_s=("gone_after_s", "max"), **{"heartbeats/s per 1k users": ("heartbeats_per_s_per_1k_users", "first")})
print("how long a dropped user stays listed (seconds after the drop):")
print(linger.round(2).to_string())
print(f"\nexpiry event after the deadline: median {lag_ms.median():.2f} ms, max {lag_ms.max():.2f} ms "
      f"over {len(drills):,} expiries")

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=FIGSIZE, dpi=DPI)
room_dl = dl[dl["stream"] == "room_message"]
ax1.hist(1e3 * room_dl["latency_s"], bins=40, color="C0")
ax1.axvline(1e3 * room_dl["latency_s"].quantile(0.99), color="C3", ls="--", label="p99")
ax1.set(xlabel="delivery latency (ms)", ylabel="member receipts", title="room broadcast: per member")
ax1.legend()
ax2.scatter(rooms["targeted"], 1e3 * rooms["makespan_s"], s=6, alpha=0.5)
xs = np.array([0, rooms["targeted"].max()])
ax2.plot(xs, fit[1] + fit[0] * xs, color="C3", lw=1)
ax2.set(xlabel="room members", ylabel="makespan (ms)", title="room broadcast: to the last member")
for (ttl, hb), g in drills.groupby(["ttl_s", "heartbeat_s"], sort=False):
    ax3.hist(g["gone_after_s"], bins=np.arange(0, 61, 2), alpha=0.6, label=f"TTL {ttl:.0f} s, heartbeat {hb:.0f} s")
ax3.set(xlabel="seconds from drop to disappearance", ylabel="dropped users", title="dropped users linger")
ax3.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# In numbers, from the runs above:

# %%
room, everyone = per_stream.loc["room_message"], per_stream.loc["announcement"]
print(f"room broadcast: each member reached in {room['delivery p50 (ms)']:.2f} ms (p50) / "
      f"{room['delivery p99 (ms)']:.2f} ms (p99), the last member in {room['makespan p50 (ms)']:.2f} ms (p50) / "
      f"{room['makespan p99 (ms)']:.2f} ms (p99), +{1e3 * fit[0]:.1f} µs per member")
print(f"announcement to {everyone['members p50']:.0f} online users: last member within "
      f"{everyone['makespan p99 (ms)']:.1f} ms (p99); audit: {run.audit()['stale']} stale, "
      f"{run.audit()['missed']} missed")
for (ttl, hb), r in linger.iterrows():
    print(f"TTL {ttl:.0f} s / heartbeat {hb:.0f} s: a dropped user stays listed {r['min_s']:.1f}-{r['max_s']:.1f} s "
          f"(mean {r['mean_s']:.1f} s), for {r['heartbeats/s per 1k users']:.0f} heartbeats/s per 1,000 users")
print(f"the expiry event follows the deadline by at most {lag_ms.max():.2f} ms")

# %% [markdown]
# ## Answer
#
# With the modelled Redis + NATS pair and the coordinator's own CPU, **a room broadcast reaches each
# member in one to three milliseconds** (p50 and p99 above), far inside the 50 ms chat target, and **its
# makespan to the last member is of the same order, growing by about 12 µs per member** (one enumerate,
# then one publish per member through a single pipeline, then delivery); an announcement to every
# online user (about 660 here) completes in about 10 ms. Targeting is exact: no message to an expired
# user, no present member missed. **A dropped user keeps showing as present for between TTL − heartbeat
# and TTL after the drop — 37–60 s with the spec's 60 s TTL and 20 s heartbeat, 50 s on average** —
# because nothing can tell a silent user from a slow one until its TTL runs out. The expiry machinery
# adds almost nothing: the registry stops returning the user at its deadline and the sweeper reports the
# expiry about 10 ms later at most (its resolution, plus the claim's own round trip), so **the TTL, not
# the expiry lag, sets how fast a dropped user disappears**. Halving the TTL (30 s, heartbeat 10 s)
# halves the linger (about 25 s on average) and doubles the heartbeat load (100 instead of 50
# heartbeats/s per 1,000 users); 15 s / 5 s lingers about 12 s for 4× the load.
