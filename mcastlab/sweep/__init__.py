"""Curves, not single runs: sweeps over a grid of scenario settings, and the knee of a capacity curve.

::

    import mcastlab
    s = mcastlab.sweep("scenarios/iot-device-management.yaml",
                       grid={"workload.devices": [1_000, 2_000, 4_000]}, seeds=3, workers=2)
    s.points      # one row per run: swept keys, seed, ok/error, <op>_count/_p50_s/_p99_s/..., targets
    s.summary     # one row per grid point: mean and 95 % interval over the seeds
    k = mcastlab.knee("scenarios/prism-loadtest.yaml", "workload.rate.rate", 50, 300, seeds=2,
                      overrides={"duration": 20, "spec_targets": False, "targets": [
                          {"metric": "latency", "op": "multicast", "stat": "p99", "below": 0.05}]})
    k.value, k.failed_at, k.first_failing_target      # 124, 128, 'multicast latency p99' (here)

Each grid point x seed is an independent run (:func:`mcastlab.workloads.run_scenario`, sim mode by
default) executed as a task on **Dask distributed**: a ``LocalCluster`` of worker processes started for
the call (one per CPU unless ``workers=N``), an existing cluster (``scheduler="tcp://HOST:8786"``), or
a ``distributed.Client`` you pass. Seeds are the scenario's seed and the ones that follow it; runs in
virtual time are reproducible from their seed, so the same grid and seeds give the same ``points``
(apart from the ``run`` ids and the clock columns ``wall_s`` and ``cpu_s``).

**The pass rule** (``all_passed``, and the knee's criterion): every target *with data* passed — a
target's verdict ``insufficient`` (too few samples to judge) counts as not passed; a target with
``no data`` in a run (nothing in its band, e.g. "enumerate 1,000 identities" in a 500-device fleet) is
left out of that run's judgement. See :mod:`mcastlab.sweep._points` (per-run figures),
:mod:`mcastlab.sweep._summary` (intervals), :mod:`mcastlab.sweep._knee` (bisection and its monotone
assumption), :mod:`mcastlab.sweep.compare` (N runs side by side) and :mod:`mcastlab.dask_cluster`
(getting a Dask client; reusable on its own).

``mcastlab.sweep`` is both this package and the function: calling the module calls :func:`sweep`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mcastlab.sweep._knee import KneeResult, knee
from mcastlab.sweep._store import SweepResult, load_sweep
from mcastlab.sweep._sweep import sweep


class _CallableModule(types.ModuleType):
    """Lets ``mcastlab.sweep(...)`` work whether ``mcastlab.sweep`` resolved to the function or, once any
    ``mcastlab.sweep.*`` module was imported, to this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepResult:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["KneeResult", "SweepResult", "knee", "load_sweep", "sweep"]
