"""``kind: iot-fleet`` — sensors in warehouses: heartbeats with jitter, deaths, firmware pushes, restarts.

Each sensor boots (registers) at a random instant in ``boot_window`` and heartbeats every
``heartbeat.period`` ± jitter with TTL ``ttl``. A ``deaths.fraction`` of them die (stop heartbeating)
so their registrations expire. Operators:

* ``firmware_push``: multicast an update to the sensors of one warehouse on a firmware older than
  ``latest_firmware``; each sensor that got it installs (offline ``install_time``) and re-registers
  with the new version, so later pushes target fewer;
* ``warehouse_restart``: multicast a restart to every sensor of one warehouse; they go offline for
  ``restart_downtime`` and register again;
* ``dashboard``: enumerate the online sensors of a warehouse; ``outdated_query``: enumerate every
  sensor on an old firmware (a version comparison, not index-assisted).
"""

# ruff: noqa: RUF009 - spec()/rate() return dataclasses.field(...) with scenario metadata

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from mcastlab.workloads._schema import fail, spec
from mcastlab.workloads.arrivals import rate
from mcastlab.workloads.cohort import FleetContext
from mcastlab.workloads.context import Context
from mcastlab.workloads.kinds._common import (
    Deaths,
    Heartbeat,
    check_weights,
    choose_index,
    letters,
    payload,
    seconds_range,
)


@dataclass(frozen=True, slots=True)
class IotFleet:
    """Parameters of the IoT device-management workload."""

    kind: Literal["iot-fleet"]
    cohort_mode: ClassVar[bool] = True  # the cohort engine (mcastlab.workloads.cohort) can run it
    devices: int = spec(10_000, doc="number of sensors", min=1)
    ttl: float = spec(300.0, doc="registration TTL, seconds", gt=0)
    heartbeat: Heartbeat = spec(Heartbeat(60.0, 0.1), doc="heartbeat period and jitter")
    boot_window: float = spec(60.0, doc="sensors boot uniformly within this many seconds", min=0)
    warehouses: int = spec(8, doc="number of warehouses", min=1)
    firmware: dict[str, float] = spec(
        {"1.2.3": 0.1, "1.2.10": 0.3, "1.3.0": 0.6}, doc="firmware version -> share of sensors"
    )
    latest_firmware: str = spec("1.3.0", doc="version firmware pushes install")
    deaths: Deaths = spec(Deaths(0.02, 120.0, 600.0), doc="sensors that die")
    firmware_push: Any = rate(1 / 120, "firmware pushes per second")
    install_time: tuple[float, float] = seconds_range((30.0, 120.0), "install downtime [low, high] seconds")
    warehouse_restart: Any = rate(1 / 300, "warehouse restarts per second")
    restart_downtime: float = spec(20.0, doc="seconds a restarted sensor is offline", min=0)
    dashboard: Any = rate(1.0, "dashboard enumerates per second")
    outdated_query: Any = rate(0.05, "outdated-firmware enumerates per second")
    payload_bytes: int = spec(256, doc="multicast payload size", min=1)
    gateway_batch: int = spec(2000, doc="cohort engine: sensors per pipelined heartbeat batch", min=1)
    mode: Literal["publish", "ack"] | None = spec(None, doc="delivery mode (default: the config's)")

    def check(self, key: str, source: str) -> None:
        check_weights(self.firmware, f"{key}.firmware", source)
        self.heartbeat.check_against(self.ttl, key, source)
        if self.warehouses > self.devices:  # one name per warehouse is built: 10**9 of them would not fit
            fail(source, f"{key}.warehouses", f"{self.warehouses:,} warehouses for {self.devices:,} devices",
                 "use at most as many warehouses as devices")

    def capacity(self, duration: float) -> int:
        """Most identities registered at once (about)."""
        return self.devices

    def filters(self) -> dict[str, str]:
        """Filter texts built from scenario values, by the key they come from (checked when loading)."""
        return {"workload.latest_firmware": f'firmware_version < v"{self.latest_firmware}"'}

    def multicast_streams(self) -> dict[str, Any]:
        """The workload's multicast streams and their arrival schedules (for "too short" warnings)."""
        return {"firmware_push": self.firmware_push, "warehouse_restart": self.warehouse_restart}

    def planned_deaths(self) -> int:
        """Identities the deaths schedule kills (if the run lasts past ``deaths.end``)."""
        return round(self.deaths.fraction * self.devices)

    def estimate(self, duration: float, batch: int = 1) -> dict[str, float]:
        """Expected identities and frame rows (ops, deliveries) of a run, for the memory guard
        (``batch``: heartbeats recorded per row, as the cohort engine does)."""
        beats = self.devices * duration / self.heartbeat.period / batch
        pushes = self.firmware_push.mean_rate * duration
        restarts = self.warehouse_restart.mean_rate * duration
        per_wh = self.devices / self.warehouses
        old = 1.0 - self.firmware.get(self.latest_firmware, 0.0) / max(sum(self.firmware.values()), 1e-12)
        deliveries = pushes * per_wh * old + restarts * per_wh
        ops = self.devices + beats + deliveries + (self.dashboard.mean_rate + self.outdated_query.mean_rate
                                                   ) * duration
        return {"identities": self.devices, "ops": ops, "deliveries": deliveries}

    def setup(self, ctx: Context) -> None:
        """Create the sensors (one by one, or as a vectorised fleet) and schedule every stream."""
        rng = ctx.rng("iot:fleet")
        whs = [f"warehouse-{letters(i)}" for i in range(self.warehouses)]
        keys = list(self.firmware)
        version = choose_index(rng, self.firmware, self.devices)
        where = rng.integers(0, self.warehouses, size=self.devices)
        boots = (
            rng.uniform(0, self.boot_window, size=self.devices)
            if self.boot_window
            else np.zeros(self.devices)
        )
        model = np.where(np.arange(self.devices) % 3 == 0, 1, 0)  # th-200 every third sensor
        models = ("th-100", "th-200")
        hb = self.heartbeat
        if isinstance(ctx, FleetContext):
            groups = [{"status": "online", "firmware_version": v, "location": w, "model": m}
                      for v in keys for w in whs for m in models]
            group_of = (version * self.warehouses + where) * len(models) + model
            ctx.cohort_size = self.gateway_batch
            codes = ctx.fleet("sensor-", self.devices, groups, group_of, period=hb.period,
                              boot_window=self.boot_window)
        else:
            codes = np.empty(self.devices, np.int64)
            for i in range(self.devices):
                md = {
                    "status": "online",
                    "firmware_version": keys[version[i]],
                    "location": whs[where[i]],
                    "model": models[model[i]],
                }
                codes[i] = ctx.identity(f"sensor-{i:05d}", md, period=hb.period, jitter=hb.jitter)
            for i in np.argsort(boots, kind="stable"):
                ctx.at(float(boots[i]), ctx.boot, int(codes[i]))
        who, when = self.deaths.schedule(ctx.rng("iot:deaths"), codes)
        ctx.kill_at(when, who)
        self._streams(ctx, whs)

    def _streams(self, ctx: Context, whs: list[str]) -> None:
        compile_ = ctx.coord.compile
        old = {
            w: compile_(f'location == "{w}" and firmware_version < v"{self.latest_firmware}"') for w in whs
        }
        at_w = {w: compile_(f'location == "{w}"') for w in whs}
        online_w = {w: compile_(f'status == "online" and location == "{w}"') for w in whs}
        outdated = compile_(f'firmware_version < v"{self.latest_firmware}"')
        pick = ctx.rng("iot:warehouses")
        push = payload("firmware", self.payload_bytes, version=self.latest_firmware)
        restart = payload("restart", self.payload_bytes)
        install = ctx.rng("iot:install")
        lo, hi = self.install_time
        latest = self.latest_firmware

        def upgraded(md: Mapping[str, Any]) -> Mapping[str, Any]:
            return {**md, "firmware_version": latest}

        def on_push(t: float, _res: Any, delivered: np.ndarray) -> None:
            ctx.reboot_many(t, delivered, install.uniform(lo, hi, len(delivered)), upgraded,
                            "firmware-install")

        def on_restart(t: float, _res: Any, delivered: np.ndarray) -> None:
            ctx.reboot_many(t, delivered, self.restart_downtime, None, "restart")

        def fire_push(t: float) -> None:
            ctx.multicast(
                t,
                old[whs[pick.integers(len(whs))]],
                push,
                stream="firmware_push",
                mode=self.mode,
                then=on_push,
            )

        def fire_restart(t: float) -> None:
            ctx.multicast(
                t,
                at_w[whs[pick.integers(len(whs))]],
                restart,
                stream="warehouse_restart",
                mode=self.mode,
                then=on_restart,
            )

        ctx.stream(self.firmware_push, fire_push, name="firmware_push")
        ctx.stream(self.warehouse_restart, fire_restart, name="warehouse_restart")
        ctx.stream(
            self.dashboard,
            lambda t: ctx.enumerate(t, online_w[whs[pick.integers(len(whs))]], stream="dashboard"),
            name="dashboard",
        )
        ctx.stream(
            self.outdated_query,
            lambda t: ctx.enumerate(t, outdated, stream="outdated_query"),
            name="outdated_query",
        )


__all__ = ["IotFleet"]
