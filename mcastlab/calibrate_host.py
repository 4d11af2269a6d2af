"""What the calibration measures for the simulated host (``mcastlab.sim.host``): the machine's cores and
the CPU each server process burns, so the simulation can share the cores between them as live runs do.

- Redis: process CPU seconds (all its threads) per second of command time (``INFO commandstats``) over
  the whole calibration — the socket reads and writes that commandstats leaves out.
- nats-server: process CPU seconds per message of a bare publish fan-out (nobody listening, as in the
  reference load test), charged to the simulated host per message apart from the messaging server's
  serial service time, since a multi-threaded nats-server burns more CPU than the time it takes to pass
  one message on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mcastlab.backends._redis_scripts import SCRIPTS
from mcastlab.measure.resources import process_cpu_seconds

PROBE_IDS = 2000  # recipients of the nats-server probe's fan-outs
PROBE_REPS = 50  # 100,000 messages: well above the 10 ms resolution of a process's CPU clock


# Redis counts a command a script runs twice in INFO commandstats: in its own entry and in the script's
# EVALSHA time. The commands the registry only ever runs inside its scripts are left out of the busy time;
# the few it also sends itself stay in (double-counting a few µs of a script that runs them).
SENT_DIRECTLY = {"hmget", "zrangebyscore", "smembers", "del", "zcount"}
ONLY_IN_SCRIPTS = {name.lower() for _, body in SCRIPTS.values()
                   for name in re.findall(r"'([A-Z]{3,})'", body)} - SENT_DIRECTLY  # (+ WITHSCORES...)


def redis_command_usec(url: str) -> Callable[[], float]:
    """A callable returning Redis' cumulative command time in microseconds (INFO commandstats), each
    script's nested commands counted once (in its EVALSHA)."""
    import redis

    client = redis.Redis.from_url(url)
    skip = {f"cmdstat_{c}" for c in ONLY_IN_SCRIPTS} | {"cmdstat_info"}

    def busy() -> float:
        stats = client.info("commandstats")
        return float(sum(v.get("usec", 0) for k, v in stats.items() if k not in skip))

    return busy


def process_cpu_s(pid: int) -> float:
    """CPU seconds used so far by every thread of process ``pid`` (0 when it cannot be read)."""
    return process_cpu_seconds(pid) or 0.0


class ServerCpu:
    """Process CPU of the local servers around a span of calibration work."""

    def __init__(self, redis_pid: int, redis_usec: Callable[[], float]) -> None:
        self.redis_pid = redis_pid
        self._usec = redis_usec
        self._start = (process_cpu_s(redis_pid), redis_usec())

    def redis(self) -> dict[str, float]:
        """Redis' process CPU and command time (seconds) since this was made."""
        cpu, usec = self._start
        return {"redis_cpu_s": process_cpu_s(self.redis_pid) - cpu,
                "redis_cmd_s": (self._usec() - usec) / 1e6}


async def nats_cpu_per_message(coord: Any, nats_pid: int) -> float:
    """nats-server CPU seconds per message of bare publish fan-outs to ``PROBE_IDS`` identities."""
    rt = coord.runtime
    names = [f"host-probe-{i:05d}" for i in range(PROBE_IDS)]
    for k in range(0, PROBE_IDS, 200):
        await rt.gather(*[coord.register(x, {"probe": True}) for x in names[k:k + 200]])
    await coord.multicast({"probe": True}, b"cal", mode="publish")  # subjects cached, connection warm
    before = process_cpu_s(nats_pid)
    sent = 0
    for _ in range(PROBE_REPS):
        res = await coord.multicast({"probe": True}, b"cal", mode="publish")
        sent += res.delivered
    await rt.sleep(0.05)
    used = process_cpu_s(nats_pid) - before
    for k in range(0, PROBE_IDS, 200):
        await rt.gather(*[coord.unregister(x) for x in names[k:k + 200]])
    return used / sent if sent else 0.0


__all__ = ["PROBE_IDS", "PROBE_REPS", "ServerCpu", "nats_cpu_per_message", "process_cpu_s",
           "redis_command_usec"]
