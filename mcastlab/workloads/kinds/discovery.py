"""``kind: service-discovery`` — service instances with health, crashes, rolling deploys, config pushes.

``services`` services run ``instances`` instances each, registered with service, version, health and
zone, heartbeating every ``heartbeat.period`` with TTL ``ttl``. Health flips to degraded/unhealthy and
recovers (re-registers); instances crash (their registration expires) and are replaced by a new one
``replace_after`` seconds later. A rolling deploy multicasts ``drain`` to the service's old version,
then every ``deploy_step`` seconds starts a new-version instance and unregisters an old one. Operators
multicast ``config_update`` to one service/version; load balancers ``lookup`` healthy instances.
"""

# ruff: noqa: RUF009 - spec()/rate() return dataclasses.field(...) with scenario metadata

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from mcastlab.workloads._schema import spec
from mcastlab.workloads.arrivals import rate
from mcastlab.workloads.context import ONLINE, Context
from mcastlab.workloads.kinds._common import Heartbeat, letters, payload, seconds_range


@dataclass(frozen=True, slots=True)
class ServiceDiscovery:
    """Parameters of the service-discovery workload."""

    kind: Literal["service-discovery"]
    cohort_mode: ClassVar[bool] = False  # the cohort engine (mcastlab.workloads.cohort) can run it
    services: int = spec(12, doc="number of services", min=1)
    instances: int = spec(8, doc="instances per service", min=1)
    zones: int = spec(3, doc="availability zones", min=1)
    ttl: float = spec(30.0, doc="registration TTL, seconds", gt=0)
    heartbeat: Heartbeat = spec(Heartbeat(10.0, 0.1), doc="health-check heartbeat")
    boot_window: float = spec(10.0, doc="initial instances start within this many seconds", min=0)
    health_change: Any = rate(0.5, "health changes per second (whole fleet)")
    recovery_time: tuple[float, float] = seconds_range((10.0, 60.0), "degraded for [low, high] seconds")
    crash: Any = rate(1 / 60, "instance crashes per second (whole fleet)")
    replace_after: float = spec(5.0, doc="seconds until a crashed instance is replaced", min=0)
    deploy: Any = rate(1 / 300, "rolling deploys per second")
    deploy_step: float = spec(5.0, doc="seconds between replacing two instances in a deploy", gt=0)
    config_update: Any = rate(0.2, "config-update multicasts per second")
    lookup: Any = rate(20.0, "healthy-instance enumerates per second")
    payload_bytes: int = spec(512, doc="multicast payload size", min=1)
    mode: Literal["publish", "ack"] | None = spec(None, doc="delivery mode (default: the config's)")

    def check(self, key: str, source: str) -> None:
        self.heartbeat.check_against(self.ttl, key, source)

    def capacity(self, duration: float) -> int:
        """Most identities registered at once (about)."""
        return 3 * self.services * self.instances

    def filters(self) -> dict[str, str]:
        """No filter text comes from scenario values (service names are generated)."""
        return {}

    def multicast_streams(self) -> dict[str, Any]:
        """The workload's multicast streams and their arrival schedules (for "too short" warnings)."""
        return {"drain": self.deploy, "config_update": self.config_update}

    def planned_deaths(self) -> int:
        return 0  # crashes are a rate, not a planned number

    def estimate(self, duration: float, batch: int = 1) -> dict[str, float]:
        """Expected identities and frame rows (ops, deliveries) of a run, for the memory guard."""
        n = self.services * self.instances
        beats = n * duration / self.heartbeat.period
        pushes = (self.config_update.mean_rate + self.deploy.mean_rate) * duration
        ops = 2 * n + beats + pushes + self.lookup.mean_rate * duration
        return {"identities": 3 * n, "ops": ops, "deliveries": pushes * self.instances}

    def setup(self, ctx: Context) -> None:
        """Start the instances and schedule health changes, crashes, deploys and operator streams."""
        rng = ctx.rng("discovery:fleet")
        names = [f"svc-{letters(i)}" for i in range(self.services)]
        version = dict.fromkeys(names, (1, 0))
        members: dict[str, list[int]] = {s: [] for s in names}
        deploying: set[str] = set()
        serial = [0]
        hb = self.heartbeat
        compile_ = ctx.coord.compile

        def vtext(v: tuple[int, int]) -> str:
            return f"{v[0]}.{v[1]}.0"

        def start(t: float, svc: str, stream: str = "register") -> int:
            serial[0] += 1
            md = {
                "service": svc,
                "version": vtext(version[svc]),
                "health": "healthy",
                "zone": f"zone-{letters(int(rng.integers(self.zones)))}",
                "port": 8000 + serial[0] % 1000,
            }
            code = ctx.identity(f"{svc}-{serial[0]:05d}", md, period=hb.period, jitter=hb.jitter)
            members[svc].append(code)
            ctx.boot(t, code, stream=stream)
            return code

        for svc in names:
            for _ in range(self.instances):
                ctx.at(float(rng.uniform(0, self.boot_window)) if self.boot_window else 0.0, start, svc)

        def live(svc: str | None = None) -> list[int]:
            pool = members[svc] if svc is not None else [c for s in names for c in members[s]]
            return [c for c in pool if ctx.state[c] == ONLINE]

        def set_health(t: float, code: int, health: str, g: int) -> None:
            if ctx.gen[code] == g and ctx.state[code] == ONLINE:
                ctx.register(t, code, dict(ctx.truth.meta[code], health=health), stream="health_change")

        def health_change(t: float) -> None:
            pool = live()
            if pool:
                code = pool[int(rng.integers(len(pool)))]
                set_health(t, code, "degraded" if rng.random() < 0.7 else "unhealthy", ctx.gen[code])
                ctx.at(
                    t + float(rng.uniform(*self.recovery_time)), set_health, code, "healthy", ctx.gen[code]
                )

        def crash(t: float) -> None:
            pool = live()
            if pool:
                code = pool[int(rng.integers(len(pool)))]
                svc = str(ctx.truth.meta[code]["service"])
                ctx.kill(t, code)
                members[svc].remove(code)
                ctx.at(t + self.replace_after, start, svc, "replace")

        drain = payload("drain", self.payload_bytes)
        config = payload("config", self.payload_bytes)

        def deploy(t: float) -> None:
            idle = [s for s in names if s not in deploying]
            if not idle:
                return
            svc = idle[int(rng.integers(len(idle)))]
            old = version[svc]
            ctx.multicast(
                t,
                compile_(f'service == "{svc}" and version == "{vtext(old)}"'),
                drain,
                stream="drain",
                mode=self.mode,
            )
            deploying.add(svc)
            version[svc] = (old[0], old[1] + 1)
            olds = list(members[svc])
            for k, code in enumerate(olds):
                ctx.at(t + (k + 1) * self.deploy_step, replace, svc, code)
            ctx.at(t + (len(olds) + 1) * self.deploy_step, lambda _t: deploying.discard(svc))

        def replace(t: float, svc: str, code: int) -> None:
            start(t, svc, "deploy")
            if code in members[svc]:
                members[svc].remove(code)
                if ctx.state[code] == ONLINE:
                    ctx.leave(t, code)

        def config_update(t: float) -> None:
            svc = names[int(rng.integers(len(names)))]
            ctx.multicast(
                t,
                compile_(f'service == "{svc}" and version == "{vtext(version[svc])}"'),
                config,
                stream="config_update",
                mode=self.mode,
            )

        healthy = {s: compile_(f'service == "{s}" and health == "healthy"') for s in names}
        pick = ctx.rng("discovery:lookup")
        ctx.stream(self.health_change, health_change, name="health_change")
        ctx.stream(self.crash, crash, name="crash")
        ctx.stream(self.deploy, deploy, name="deploy")
        ctx.stream(self.config_update, config_update, name="config_update")
        ctx.stream(
            self.lookup,
            lambda t: ctx.enumerate(t, healthy[names[int(pick.integers(len(names)))]], stream="lookup"),
            name="lookup",
        )


__all__ = ["ServiceDiscovery"]
