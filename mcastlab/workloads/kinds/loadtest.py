"""``kind: loadtest`` — a request-mix load test, as the reference implementation's published one.

Requests arrive at ``rate`` (constant 100/s in the reference); each is a register of a new identity
(with ``metadata`` and TTL ``ttl``), an enumerate or a multicast with ``filter``, drawn by ``mix``.
With the reference's mix (50 % register / 30 % enumerate / 20 % multicast to ``status == "online"``,
which matches everything registered) a multicast targets about half of the registered identities.
"""

# ruff: noqa: RUF009 - spec()/rate() return dataclasses.field(...) with scenario metadata

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from mcastlab.workloads._schema import fail, join, spec
from mcastlab.workloads.arrivals import rate
from mcastlab.workloads.context import Context
from mcastlab.workloads.kinds._common import check_weights, payload

OPS = ("register", "enumerate", "multicast", "count")


@dataclass(frozen=True, slots=True)
class LoadTest:
    """Parameters of the request-mix load test."""

    kind: Literal["loadtest"]
    cohort_mode: ClassVar[bool] = False  # the cohort engine (mcastlab.workloads.cohort) can run it
    rate: Any = rate({"rate": 100.0, "process": "constant"}, "requests per second")
    mix: dict[str, float] = spec(
        {"register": 0.5, "enumerate": 0.3, "multicast": 0.2}, doc="operation -> share of requests"
    )
    filter: str = spec('status == "online"', doc="filter of enumerates and multicasts")
    ttl: float = spec(300.0, doc="TTL of registered identities, seconds", gt=0)
    metadata: dict[str, Any] = spec({"status": "online"}, doc="metadata of registered identities")
    prefix: str = spec("device", doc="identity name prefix")
    payload_bytes: int = spec(64, doc="multicast payload size", min=1)
    mode: Literal["publish", "ack"] | None = spec(None, doc="delivery mode (default: the config's)")

    def check(self, key: str, source: str) -> None:
        for op in self.mix:
            if op not in OPS:
                fail(source, join(join(key, "mix"), op), f"unknown operation {op!r}", f"use {', '.join(OPS)}")
        check_weights(self.mix, join(key, "mix"), source)

    def capacity(self, duration: float) -> int:
        """Most identities registered at once (about)."""
        share = self.mix.get("register", 0) / sum(self.mix.values())
        return int(self.rate.mean_rate * min(self.ttl, duration) * share * 1.1) + 16

    def filters(self) -> dict[str, str]:
        """Filter texts from scenario values, by key (checked when loading)."""
        return {"workload.filter": self.filter}

    def multicast_streams(self) -> dict[str, Any]:
        """The multicast share of the request stream (for "too short" warnings)."""
        share = self.mix.get("multicast", 0) / sum(self.mix.values())
        return {"request": self.rate.scaled(share)} if share else {}

    def planned_deaths(self) -> int:
        return 0

    def estimate(self, duration: float, batch: int = 1) -> dict[str, float]:
        """Expected identities and frame rows (ops, deliveries) of a run, for the memory guard."""
        total = sum(self.mix.values())
        n = self.rate.mean_rate * duration
        registered = n * self.mix.get("register", 0) / total
        multicasts = n * self.mix.get("multicast", 0) / total
        return {"identities": registered, "ops": n, "deliveries": multicasts * registered / 2}

    def setup(self, ctx: Context) -> None:
        """Schedule the requests."""
        flt = ctx.coord.compile(self.filter)
        ops = list(self.mix)
        p = np.asarray([self.mix[o] for o in ops], float)
        cum = np.cumsum(p / p.sum())
        rng = ctx.rng("loadtest:mix")
        data = payload("loadtest", self.payload_bytes)
        serial = [0]

        def request(t: float) -> None:
            op = ops[min(int(np.searchsorted(cum, rng.random(), side="right")), len(ops) - 1)]
            if op == "register":
                code = ctx.identity(f"{self.prefix}-{serial[0]:06d}", dict(self.metadata))
                serial[0] += 1
                ctx.register(t, code, stream="request")
            elif op == "enumerate":
                ctx.enumerate(t, flt, stream="request")
            elif op == "count":
                ctx.count(t, flt, stream="request")
            else:
                ctx.multicast(t, flt, data, stream="request", mode=self.mode)

        ctx.stream(self.rate, request, name="requests")


__all__ = ["LoadTest"]
