"""What every simulated backend does on open and at construction: bind to one SimPy environment, and
split its random generator into independent children."""

from __future__ import annotations

from typing import Any

import numpy as np

from mcastlab.errors import ClosedError, RuntimeMisuseError
from mcastlab.runtime import SimPyRuntime


def bind_runtime(backend: Any, runtime: Any) -> tuple[SimPyRuntime, Any]:
    """The runtime a simulated backend opens on: a SimPyRuntime, the same environment on every open."""
    if not isinstance(runtime, SimPyRuntime):
        raise RuntimeMisuseError(f"{backend.name} simulates virtual time: open it on a SimPyRuntime, got "
                          f"{type(runtime).__name__} (live servers need the live backends)")
    if backend.env is not None and runtime.env is not backend.env:
        raise ClosedError(f"{backend.name} is already open on another SimPy environment; build new simulated "
                          "backends (make_sim_backends) for each environment")
    return runtime, runtime.env


def spawn_generators(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators of ``rng`` (deterministic given its seed)."""
    try:
        return list(rng.spawn(n))
    except (AttributeError, TypeError, ValueError):
        return [np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, size=n).tolist()]


__all__ = ["bind_runtime", "spawn_generators"]
