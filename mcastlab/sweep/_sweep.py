"""sweep(): every grid point x seed as an independent run on Dask distributed; points, summary, frames."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcastlab.errors import ConfigError, McastlabError, ScenarioError, UsageError
from mcastlab.measure.store import git_revision, jsonable, machine, package_versions, prepare_out
from mcastlab.sweep._exec import client_for, execute, progress_bar
from mcastlab.sweep._grid import Point, check_grid, label, points, seeds_from
from mcastlab.sweep._points import PointRecord, points_frame
from mcastlab.sweep._store import SweepResult, concat_frames, save_sweep
from mcastlab.sweep._summary import summarize
from mcastlab.sweep._task import PointTask


def base_scenario(scenario: Any, overrides: Mapping[str, Any] | None) -> Any:
    """The scenario with the fixed ``overrides`` applied (a Scenario, a YAML path or a dict)."""
    from mcastlab.workloads.scenario import Scenario, load_scenario

    if isinstance(scenario, Scenario):
        return load_scenario(scenario.raw, overrides) if overrides else scenario
    if not isinstance(scenario, str | Path | Mapping):
        raise UsageError("scenario: expected a Scenario, a YAML path or a dict, "
                         f"got {type(scenario).__name__}")
    return load_scenario(scenario, overrides)


def check_point(base: Any, point: Point) -> Any:
    """The scenario at ``point``, validated on the client before anything runs (bad input stops the
    sweep at once, naming the point, the key and the fix)."""
    from mcastlab.workloads.scenario import load_scenario

    try:
        scn = load_scenario(base.raw, dict(point))
    except ConfigError as exc:
        raise ScenarioError(f"{base.source}: grid point {label(point)}: {exc}", key=exc.key,
                            source=base.source) from None
    except McastlabError as exc:
        raise UsageError(f"{base.source}: grid point {label(point)}: {exc}") from None
    return scn


def sweep(
    scenario: Any,
    grid: Mapping[str, Sequence[Any]],
    *,
    seeds: int = 1,
    overrides: Mapping[str, Any] | None = None,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
    mode: str = "sim",
    frames: bool = True,
    progress: bool = True,
    guard_memory: bool = True,
) -> SweepResult:
    """Run ``scenario`` at every point of ``grid`` with ``seeds`` seeds each, in parallel on Dask.

    ``grid`` maps dotted scenario keys to values (``{"workload.devices": [1000, 2000]}``); ``overrides``
    fixes other keys for every run. Seeds are the scenario's seed and the ``seeds - 1`` that follow.
    The runs go to ``client`` (a ``distributed.Client``, left open) or to a cluster made for this call:
    a ``LocalCluster`` of ``workers`` processes (default: one per CPU) or the scheduler at
    ``scheduler``. ``mode`` is ``sim`` (virtual time) unless ``"live"`` (each run starts its own
    servers). A failed run is recorded in ``points`` (``ok`` False, ``error``) and the others go on.
    ``frames=False`` keeps only the targets frame of each run. ``out`` (new or empty, unless ``force``)
    receives the sweep directory (:mod:`mcastlab.sweep._store`). Raises a typed
    :class:`~mcastlab.errors.UsageError` for bad input before anything runs.
    """
    if mode not in ("sim", "live"):
        raise UsageError(f"mode must be 'sim' or 'live', got {mode!r}. Fix: --mode sim or --mode live")
    overrides = dict(overrides or {})
    grid = check_grid(grid, overrides)
    base = base_scenario(scenario, overrides)
    seed_list = seeds_from(base.seed, seeds)
    pts = points(grid)
    scns = [check_point(base, p) for p in pts]
    out_dir = prepare_out(out, force=force) if out is not None else None
    tasks = [PointTask(i * len(seed_list) + j, i, p, s, base.raw, mode, frames, guard_memory, base.source)
             for i, p in enumerate(pts) for j, s in enumerate(seed_list)]
    started = datetime.now(UTC)
    wall0 = time.perf_counter()
    with client_for(client, workers, scheduler) as c:
        from mcastlab.dask_cluster import describe

        info = {**describe(c), "startup_s": round(time.perf_counter() - wall0, 3)}
        bar = progress_bar(len(tasks), enabled=progress, desc=f"sweep {base.name}")
        try:
            records, interrupted = execute(c, tasks, bar)
        finally:
            bar.close()
    manifest = sweep_manifest(base, overrides, grid, seed_list, mode, info, started,
                              time.perf_counter() - wall0, interrupted, records)
    manifest["points"] = [{"values": jsonable(dict(p)), "warmup": s.warmup, "duration": s.duration}
                          for p, s in zip(pts, scns, strict=True)]
    pf = points_frame(records, list(grid))
    result = SweepResult(pf, summarize(pf, list(grid)), concat_frames(records, grid), manifest)
    if out_dir is not None:
        save_sweep(result, out_dir)
    return result


def sweep_manifest(base: Any, overrides: Mapping[str, Any], grid: Mapping[str, Any], seeds: list[int],
                   mode: str, info: Mapping[str, Any], started: datetime, wall: float, interrupted: bool,
                   records: Sequence[PointRecord], kind: str = "sweep") -> dict[str, Any]:
    """What a sweep (or knee) directory's manifest.json says."""
    cluster = {k: v for k, v in info.items() if k != "versions"}
    return {
        "kind": kind,
        "scenario": base.name,
        "source": base.source,
        "mode": mode,
        "grid": jsonable(dict(grid)),
        "seeds": list(seeds),
        "overrides": jsonable(dict(overrides)),
        "runs": len(records),
        "failed": sum(not r.ok for r in records),
        "interrupted": interrupted,
        **cluster,
        "versions": {**package_versions(("mcastlab", "numpy", "pandas", "simpy", "pyarrow")),
                     **dict(info.get("versions", {}))},
        "git_revision": git_revision(),
        "machine": machine(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 3),
        "scenario_config": jsonable(base.raw),
    }


__all__ = ["base_scenario", "check_point", "sweep", "sweep_manifest"]
