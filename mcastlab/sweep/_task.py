"""What a Dask worker runs for one point of a sweep or a knee: one scenario run, measured into a record.

:func:`run_point` is a top-level function of an installed module, so Dask sends it by reference and
any worker with mcastlab installed can run it. Its argument is a :class:`PointTask`: the scenario as a
plain dict (``Scenario.raw``, with the user's ``--set`` overrides already applied), the grid point's
values and the seed. It calls :func:`mcastlab.workloads.run_scenario` (sim mode unless the scenario or
``mode`` says live; a live point starts its own servers) without a progress bar, and returns a small
:class:`~mcastlab.sweep._points.PointRecord`: the figures of ``points.parquet``, the targets frame and,
when asked, the run's frames. The run id gets the grid point's number (``...-p3``): run_scenario's ids
(scenario, mode, seed and the second it started) repeat when two grid points run in the same second.

Nothing a run raises escapes: a typed :class:`~mcastlab.errors.McastlabError` (e.g. the memory guard
refusing a point too big for the worker) or any other exception becomes ``ok=False`` with
``error="<Type>: <message>"``, and the sweep goes on with the other points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mcastlab.sweep._grid import Point
from mcastlab.sweep._points import PointRecord, op_metrics, target_flags


@dataclass(frozen=True)
class PointTask:
    """One run to do: ``scenario`` (a dict) with ``values`` and ``seed`` set on top."""

    index: int
    point: int
    values: Point
    seed: int
    scenario: dict[str, Any]
    mode: str | None = None
    frames: bool = True
    guard_memory: bool = True
    source: str = ""  # the scenario file, named in errors instead of "<scenario dict>"

    @property
    def overrides(self) -> dict[str, Any]:
        return {**dict(self.values), "seed": self.seed}


def run_point(task: PointTask) -> PointRecord:
    """Run one point (see the module docstring); never raises for a failed run."""
    from mcastlab.workloads import run_scenario

    record = PointRecord(task.index, task.point, task.values, task.seed)
    t0, cpu0 = time.perf_counter(), time.thread_time()
    try:
        result = run_scenario(task.scenario, mode=task.mode, progress=False, overrides=task.overrides,
                              guard_memory=task.guard_memory)
    except Exception as exc:  # typed or not, the point is recorded as failed and the sweep goes on
        partial = getattr(exc, "result", None)
        record.run = str(partial.run) if partial is not None else ""
        message = str(exc).replace("<scenario dict>", task.source) if task.source else str(exc)
        record.error = f"{type(exc).__name__}: {message}"
        record.wall_s, record.cpu_s = time.perf_counter() - t0, time.thread_time() - cpu0
        return record
    # run_scenario's ids (scenario, mode, seed, second) repeat across grid points run in the same second
    run = f"{result.run}-p{task.point}"
    frames = {name: df.assign(run=pd.Series(run, index=df.index, dtype="string")) if "run" in df.columns
              else df for name, df in result.frames.items()}
    record.ok = True
    record.run = run
    record.figures = op_metrics(result)
    record.flags = target_flags(result.targets)
    record.targets = frames["targets"]
    record.frames = frames if task.frames else None
    record.wall_s, record.cpu_s = time.perf_counter() - t0, time.thread_time() - cpu0
    return record


def failed(task: PointTask, error: str) -> PointRecord:
    """The record of a task that never returned (its worker died, the sweep was interrupted, ...)."""
    return PointRecord(task.index, task.point, task.values, task.seed, error=error)


__all__ = ["PointTask", "failed", "run_point"]
