"""Sequences of coordinator calls with fuzzed arguments on the memory, SQLite and simulated registries.

Every call returns or raises a typed error (:mod:`.oracle`); a refused ``register``/``heartbeat``/
``unregister``/``multicast`` (and a refused ``ack``/``replay``) leaves the registry exactly as it was:
the same ``enumerate()``, ``count()`` and ``get()`` of every name, and no durable message recorded.
All three run under the SimPy runtime; the simulated registry has zero latency, so virtual time moves
only when a case says ``advance`` and a snapshot is exact. After ``sweep`` the coordinator's registered
gauge equals what is stored.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import simpy
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryRegistry, SqliteDurability, SqliteRegistry
from mcastlab.filters import strategies as fst
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import make_sim_backends

from . import strategies as fz
from .oracle import call, safe_repr

POOL = ("dev-1", "dev-2", "a.b", "*", ">", "日-3", "{x}%")
KINDS = ("memory", "sqlite", "sim")
CONFIGS = (
    {
        "max_identities": 4, "max_metadata_bytes": 512, "max_payload_bytes": 64, "max_filter_depth": 4,
        "max_clauses": 8,
    },
    {"max_identities": None, "default_ttl": None, "delivery_mode": "ack", "send_timeout": 0.5},
    {"max_identities": 1, "default_ttl": 5, "max_clauses": 1, "max_filter_depth": 1, "send_retries": 0},
)
_ZERO = {"kind": "constant", "value": 0.0}
ZERO_LATENCY_SIM = {
    "registry": {"service": {"default": _ZERO}, "network": {"default": _ZERO}},
    "messaging": {"per_message": _ZERO, "flush": _ZERO, "delivery": _ZERO, "ack": _ZERO},
    "cpu": "off",  # no client CPU either: a refused call must not move virtual time
}
WRITES = ("register", "heartbeat", "unregister", "multicast", "ack", "replay")


def _ops() -> st.SearchStrategy[tuple[Any, ...]]:
    names = fz.identity_names(POOL)
    modes = st.sampled_from((None, None, "publish", "ack", "shout", "", 1, None))
    ids = st.one_of(st.sampled_from(("fuzz-0-1", "x")), fz.identity_names(), st.lists(st.text(max_size=3)))
    return st.one_of(
        st.tuples(st.just("register"), names, fz.metadata(), fz.ttls()),
        st.tuples(st.just("register"), st.sampled_from(POOL), fst.metadata_dicts(), fz.ttls()),
        st.tuples(st.just("heartbeat"), names, fz.ttls()),
        st.tuples(st.just("unregister"), names),
        st.tuples(st.just("get"), names),
        st.tuples(st.just("enumerate"), fz.filters()),
        st.tuples(st.just("count"), fz.filters()),
        st.tuples(st.just("multicast"), fz.filters(), fz.payloads(), modes),
        st.tuples(st.just("advance"), st.sampled_from((0.0, 0.5, 1.0, 5.0, 100.0))),
        st.tuples(st.just("sweep")),
        st.tuples(st.just("replay"), names, fz.pick((0, -1, 1e308, math.nan, "0", True, 2**1024, fz.HUGE))),
        st.tuples(st.just("ack"), names, ids),
    )


def registry_cases() -> st.SearchStrategy[tuple[str, int, list[Any], list[tuple[Any, ...]]]]:
    initial = st.lists(
        st.tuples(st.sampled_from(POOL), fst.metadata_dicts(), st.sampled_from((None, 3.0, 50.0))), max_size=4
    )
    return st.tuples(
        st.sampled_from(KINDS), st.integers(0, len(CONFIGS) - 1), initial,
        st.lists(_ops(), min_size=1, max_size=8),
    )


def _coordinator(kind: str, config: Config, rt: SimPyRuntime) -> tuple[Coordinator, Any]:
    if kind == "memory":
        return Coordinator(config, registry=MemoryRegistry(), runtime=rt, name="fuzz"), None
    if kind == "sqlite":
        journal = SqliteDurability(":memory:")
        return Coordinator(
            config, registry=SqliteRegistry(":memory:"), durability=journal, runtime=rt, name="fuzz"
        ), journal
    reg, msg = make_sim_backends(ZERO_LATENCY_SIM, rng=np.random.default_rng(0))
    return Coordinator(config, registry=reg, messaging=msg, runtime=rt, name="fuzz"), None


async def _snapshot(c: Coordinator, journal: Any) -> tuple[Any, ...]:
    live = sorted(((i.id, dict(i.metadata), i.expires_at) for i in await c.enumerate()), key=lambda t: t[0])
    gets = []
    for name in POOL:
        got = await c.get(name)
        gets.append(None if got is None else (got.id, dict(got.metadata), got.expires_at))
    messages = await journal.messages() if journal is not None else None
    return live, await c.count(), gets, messages


async def _stored(c: Coordinator) -> int | None:
    reg: Any = c.registry
    if isinstance(reg, MemoryRegistry | SqliteRegistry):
        return int(await reg.identities())
    return len(reg)


async def _advance(rt: SimPyRuntime, seconds: float) -> None:
    await rt.sleep(seconds)


def _step(c: Coordinator, rt: SimPyRuntime, op: tuple[Any, ...]) -> Any:
    name, *args = op
    if name == "register":
        return c.register(args[0], args[1], ttl=args[2])
    if name == "heartbeat":
        return c.heartbeat(args[0], ttl=args[1])
    if name in ("unregister", "get"):
        return getattr(c, name)(args[0])
    if name in ("enumerate", "count"):
        return getattr(c, name)(fz.resolve_filter(args[0]))
    if name == "multicast":
        return c.multicast(fz.resolve_filter(args[0]), args[1], mode=args[2])
    if name == "advance":
        return _advance(rt, args[0])
    if name == "sweep":
        return c.sweep()
    if name == "replay":
        return c.replay(args[0], since=args[1])
    return c.ack(args[0], args[1])


def check_registry_case(case: tuple[str, int, list[Any], list[tuple[Any, ...]]]) -> None:
    kind, config_index, initial, ops = case
    rt = SimPyRuntime(simpy.Environment())
    config = Config(auto_sweep=False, **CONFIGS[config_index])  # type: ignore[arg-type]
    c, journal = _coordinator(kind, config, rt)
    rt.run(c.open())
    try:
        for name, md, ttl in initial:
            call(lambda n=name, m=md, t=ttl: rt.run(c.register(n, m, ttl=t)), f"{kind}: initial register")
        for i, op in enumerate(ops):
            what = f"{kind}: op {i} {op[0]}({', '.join(safe_repr(a, 60) for a in op[1:])})"
            before = rt.run(_snapshot(c, journal))
            t_before = rt.now()
            ok, out = call(lambda op=op: rt.run(_step(c, rt, op)), what)
            if ok or op[0] not in WRITES:
                if op[0] == "sweep":
                    assert c.registered == rt.run(_stored(c)), f"{what}: gauge {c.registered} != stored"
                continue
            assert rt.now() == t_before, f"{what}: a refused call took virtual time"
            after = rt.run(_snapshot(c, journal))
            assert after == before, (
                f"{what} was refused ({type(out).__name__}: {out}) but changed the "
                f"registry:\n before {safe_repr(before, 400)}\n after  {safe_repr(after, 400)}"
            )
    finally:
        rt.run(c.close())


__all__ = ["KINDS", "POOL", "check_registry_case", "registry_cases"]
