"""Properties of scenario loading and of tiny simulated runs.

``load_scenario(dict, overrides)`` (or a YAML file) returns a :class:`Scenario` or raises a
:class:`ScenarioError` that names a key (``exc.key``; the top level is ``""`` and says so in the
message; a file that is not YAML at all names the file) and gives a fix; a scenario that loads loads
again from its own ``raw``. A bounded scenario that loads runs in sim mode (``progress=False``)
to completion or raises a McastlabError other than :class:`RunFailedError`: that one means "the run
stopped on an unexpected error" (a bug its catch-all kept from losing the measurements), and simulated
backends never fail a run that way.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from mcastlab.errors import ScenarioError
from mcastlab.workloads import load_scenario, run_scenario
from mcastlab.workloads.runner import RunFailedError
from mcastlab.workloads.scenario import Scenario, parse_overrides

from .oracle import PropertyError, call, safe_repr
from .scenario_strategies import SetPairs, scenario_inputs, scenario_texts

RUN_WALL_LIMIT_S = 5.0  # a bounded run taking longer than this is reported: the clamp missed something


def load_cases() -> st.SearchStrategy[tuple[Any, dict[Any, Any]]]:
    """Mutated scenario dicts with overrides, and (a quarter) YAML files: ``(("yaml", text), {})``."""
    files = scenario_texts().map(lambda text: (("yaml", text), {}))
    return st.one_of(scenario_inputs(), scenario_inputs(), scenario_inputs(), files)


def run_cases() -> st.SearchStrategy[tuple[dict[str, Any], dict[Any, Any]]]:
    return scenario_inputs(bounded=True)


def _load_file(text: str) -> Scenario:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        return load_scenario(path)


def _load(case: tuple[Any, dict[Any, Any]]) -> tuple[bool, Any, str]:
    data, overrides = case
    if isinstance(data, tuple):
        what = f"load_scenario(<a file holding {safe_repr(data[1], 300)}>)"
        ok, out = call(lambda: _load_file(data[1]), what)
    else:
        name = safe_repr(data.get("name"), 40)
        what = f"load_scenario(<{name} mutated>, overrides={safe_repr(overrides, 200)})"
        if isinstance(overrides, SetPairs):  # --set KEY=VALUE arguments, parsed as the CLI does
            ok, out = call(lambda: load_scenario(data, parse_overrides(overrides)), what)
        else:
            ok, out = call(lambda: load_scenario(data, overrides), what)
    if not ok:
        if not isinstance(out, ScenarioError):
            raise PropertyError(f"{what} raised {type(out).__name__}, not a ScenarioError: {out}")
        file_level = isinstance(data, tuple) and out.source is not None  # unreadable or not YAML at all
        if (out.key is None and not file_level) or (out.key == "" and "(top level)" not in str(out)):
            raise PropertyError(f"{what}: the ScenarioError names no key: {out}")
        if "Fix" not in str(out):
            raise PropertyError(f"{what}: the ScenarioError gives no fix: {out}")
        return False, out, what
    assert isinstance(out, Scenario), f"{what} returned {type(out).__name__}"
    again_ok, again = call(lambda: load_scenario(out.raw), f"reloading the raw of {what}")
    assert again_ok, f"{what} loaded, but its own raw does not load again: {again}"
    return True, out, what


def check_load(case: tuple[dict[str, Any], dict[Any, Any]]) -> None:
    _load(case)


def check_run(case: tuple[dict[str, Any], dict[Any, Any]]) -> None:
    ok, scn, what = _load(case)
    if not ok:
        return
    t0 = time.perf_counter()
    ok, out = call(
        lambda: run_scenario(scn, mode="sim", progress=False),
        f"run_scenario({what}, mode='sim')",
        backend_errors=True,
    )
    if not ok and isinstance(out, RunFailedError):
        cause = out.__cause__
        raise PropertyError(f"run_scenario({what}) stopped on {type(cause).__name__}: {cause}") from out
    wall = time.perf_counter() - t0
    assert wall < RUN_WALL_LIMIT_S, (
        f"run_scenario({what}) took {wall:.1f} s: the bounded strategy missed a knob"
    )


__all__ = ["check_load", "check_run", "load_cases", "run_cases"]
