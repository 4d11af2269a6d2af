"""Simulated backends built from fuzzed ``sim:`` sections, called directly (not through a scenario).

``SimSpec.from_dict(section)`` returns a SimSpec or raises a ConfigError; a spec that is built gives
backends (``make_sim_backends``) on which a coordinator registers, enumerates, multicasts in both
modes, waits and sweeps - each call returns or raises a McastlabError (BackendErrors included: the
section may declare outages, drops and errors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simpy
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.errors import ConfigError, McastlabError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends

from .oracle import PropertyError, call, check_error, safe_repr
from .scenario_strategies import EXTREME, sim_sections
from .strategies import odd_text, pick


def _models(num: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Latency models in every form parse_model reads, with fuzzed numbers (and samples)."""
    samples = st.lists(st.one_of(num, pick(("x", None, [1, 2], True))), max_size=4)
    return st.one_of(
        num,
        st.builds(lambda v: {"kind": "constant", "value": v}, num),
        st.builds(lambda v, p: {"kind": "constant", "value": v, "per_item": p}, num, num),
        st.builds(lambda m, s: {"kind": "lognormal", "median": m, "sigma": s}, num, num),
        st.builds(lambda m: {"kind": "exponential", "mean": m}, num),
        st.builds(lambda xs, k: {"kind": "empirical", "samples": xs, "scale": k}, samples, num),
    )


def sim_cases() -> st.SearchStrategy[tuple[dict[str, Any], int]]:
    """Mostly well-formed ``sim:`` sections with edge numbers; a fifth are the scenario fuzzer's looser
    ones."""
    num = st.one_of(st.floats(0, 2), st.integers(0, 3), st.sampled_from((1e-6, 1e-3, 0.05)), pick(EXTREME))
    table = st.dictionaries(st.sampled_from(("default", "register", "query", "claim", "batch")), _models(num))
    fault = st.fixed_dictionaries(
        {"target": st.sampled_from(("registry", "messaging")),
         "kind": st.sampled_from(("outage", "slow", "errors", "drop"))},
        optional={"start": num, "duration": num, "probability": num, "factor": num, "delay": num,
                  "ops": st.lists(st.sampled_from(("register", "query", "send", "flush")), max_size=2)},
    )
    section = st.fixed_dictionaries({}, optional={
        "registry": st.fixed_dictionaries({}, optional={
            "servers": num, "timeout": st.one_of(num, st.none()), "connect_timeout": num,
            "service": table, "network": table}),
        "messaging": st.fixed_dictionaries({}, optional={
            "servers": num, "per_message": _models(num), "flush": _models(num), "delivery": _models(num),
            "ack": _models(num), "per_request": st.one_of(st.none(), _models(num)), "inline": st.booleans()}),
        "faults": st.lists(fault, max_size=3),
        "calibration": st.just("default"),
    })
    loose = sim_sections(st.one_of(num, odd_text(6)))
    return st.tuples(st.one_of(section, section, section, section, loose), st.integers(0, 2**32))


def check_sim(case: tuple[dict[str, Any], int]) -> None:
    section, seed = case
    what = f"SimSpec.from_dict({safe_repr(section, 300)})"
    ok, spec = call(lambda: SimSpec.from_dict(section, source="fuzz"), what)
    if not ok:
        if not isinstance(spec, ConfigError):
            raise PropertyError(f"{what} raised {type(spec).__name__}, not a ConfigError: {spec}")
        return
    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(seed))
    cfg = Config(send_timeout=0.5, send_retries=1, sweep_interval=0.5)

    async def use() -> None:
        async with Coordinator(cfg, registry=reg, messaging=msg, runtime=rt, name="fuzz") as c:
            steps = (lambda: c.register("a", {"s": 1}, ttl=2), lambda: c.register("b", {"s": 2}),
                     lambda: c.enumerate({"s": 1}), c.count, lambda: c.multicast(None, b"x"),
                     lambda: c.multicast("s == 2", b"y", mode="ack"), lambda: rt.sleep(3), c.sweep,
                     lambda: c.heartbeat("b"), lambda: c.unregister("b"))
            for i, step in enumerate(steps):
                try:
                    await step()
                except McastlabError as exc:
                    check_error(exc, f"step {i} on backends from {what}", backend_errors=True)

    call(lambda: rt.run(use()), f"a coordinator on backends from {what}", backend_errors=True)


__all__ = ["check_sim", "sim_cases"]
