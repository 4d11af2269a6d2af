"""run_scenario: drive a scenario (sim or live), then measure it into frames, targets and a manifest.

Everything random comes from the scenario's seed and the coordinator is named ``coord-0``, so a sim run
with the same seed produces identical frames. A run never loses what it measured: SIGINT / SIGTERM stop
it cleanly (the manifest says ``interrupted`` and which signal) and an unexpected exception still writes
the frames, with the error in the manifest, before :class:`RunFailedError` is raised. Before starting,
the memory guard refuses a run that cannot fit (``guard=False`` overrides) and the output directory is
checked (a non-empty one is refused unless ``force``).
"""

from __future__ import annotations

import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcastlab import __version__
from mcastlab.errors import BackendError, ScenarioError
from mcastlab.measure.frames import build
from mcastlab.measure.recorder import Recorder
from mcastlab.measure.store import RunResult, git_revision, jsonable, machine, package_versions, save_run
from mcastlab.measure.store import prepare_out as _prepare_out
from mcastlab.measure.targets import evaluate
from mcastlab.measure.timeseries import build_timeseries
from mcastlab.workloads import guard
from mcastlab.workloads._drive import Drive, drive_live, drive_sim
from mcastlab.workloads._warnings import run_warnings
from mcastlab.workloads.interrupt import EXIT_CODES, Interruption
from mcastlab.workloads.replicas import MergedRun, check_processes, drive_replicas
from mcastlab.workloads.scenario import Scenario, load_scenario


class RunFailedError(BackendError):
    """The run stopped on an unexpected error; ``result`` holds (and ``out`` has saved) what was measured."""

    def __init__(self, message: str, *, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


def run_scenario(
    scenario: Scenario | str | Path | dict[str, Any],
    *,
    mode: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    guard_memory: bool = True,
    processes: int | None = None,
    scheduler: str | None = None,
) -> RunResult:
    """Run a scenario (object, YAML path or dict); return its frames; save them to ``out`` if given.

    ``out`` must not hold files already (``force=True`` replaces it); ``guard_memory=False`` skips the
    memory guard. A live run with ``processes`` > 1 (default: the scenario's ``live.processes``) runs that
    many coordinator replicas on Dask (``scheduler``: a running cluster's address; default a local one),
    see :mod:`mcastlab.workloads.replicas`. Raises :class:`RunFailedError` (with the partial result) if
    the run itself failed.
    """
    if isinstance(scenario, Scenario):
        scn = scenario if not overrides else load_scenario(scenario.raw, overrides)
    else:
        scn = load_scenario(scenario, overrides)
    mode = mode or scn.mode
    if mode not in ("sim", "live"):
        raise ScenarioError(f"mode must be 'sim' or 'live', got {mode!r}. Fix: --mode sim or --mode live",
                            key="mode")
    processes = check_processes(scn.live.processes if processes is None else processes)
    scheduler = scheduler or scn.live.scheduler
    if (processes > 1 or scheduler) and mode != "live":
        raise ScenarioError(f"--processes {processes} / --scheduler: coordinator replicas run live servers; "
                            "in sim mode model them with sim.cpu.processes (and sim.registry.shards). "
                            "Fix: add --mode live, or drop --processes", key="live.processes")
    estimate = guard.check(scn, mode) if guard_memory else guard.estimate(scn, mode)
    out_dir = _prepare_out(out, force=force) if out is not None else None
    started = datetime.now(UTC)
    run_id = f"{scn.name}-{mode}-s{scn.seed}-{started.strftime('%Y%m%dT%H%M%S')}"
    rec = Recorder()
    wall0 = time.perf_counter()
    with Interruption() as stop:
        if mode == "sim":
            drive = drive_sim(scn, rec, progress=progress, stop=stop)
        elif processes > 1 or scheduler:
            drive = drive_replicas(scn, processes=processes, scheduler=scheduler, progress=progress,
                                   stop=stop)
        else:
            drive = drive_live(scn, rec, progress=progress, stop=stop, run_id=run_id)
    if drive.recorder is not None:
        rec = drive.recorder
    result = _result(scn, mode, run_id, started, time.perf_counter() - wall0, rec, drive, stop, estimate)
    if out_dir is not None:
        save_run(result, out_dir)
    if drive.error is not None:
        where = f"; what it measured is in {out_dir}" if out_dir is not None else ""
        raise RunFailedError(f"the run failed: {type(drive.error).__name__}: {drive.error}{where}",
                             result=result) from drive.error
    return result


def _result(scn: Scenario, mode: str, run_id: str, started: datetime, wall: float, rec: Recorder,
            drive: Drive, stop: Interruption, estimate: guard.MemoryEstimate) -> RunResult:
    """Frames, targets and manifest from whatever the drive measured (all of it, or up to a stop)."""
    ctx, backends = drive.ctx, drive.backends
    t_end = ctx.now() if ctx is not None else 0.0
    names: list[str] = ctx.truth.names if ctx is not None else []
    label = backends.label if backends is not None else "n/a"
    if ctx is not None:
        ctx.truth.close(t_end, settle=scn.config.sweep_interval + 1.0 + 20 * ctx.tol)
    frames = build(rec, names, run=run_id, scenario=scn.name, mode=mode, backend=label, warmup=scn.warmup)
    frames["timeseries"] = build_timeseries(frames, window=scn.measure.window, end=t_end, run=run_id)
    span = max(0.0, min(t_end, scn.duration) - scn.warmup)
    frames["targets"] = evaluate(scn.all_targets, frames, warmup=scn.warmup, run=run_id, span=span)
    truth = ctx.truth if ctx is not None else None
    deaths = ctx.deaths if ctx is not None else []
    counts = {
        "identities": len(names),
        "ops": len(frames["ops"]),
        "multicasts": len(frames["multicasts"]),
        "deliveries": len(frames["deliveries"]),
        "expirations": len(frames["expirations"]),
        "deaths": len(deaths),
        "expected_expirations": len(truth.expected_expiries) if truth is not None else 0,
        "ambiguous_expirations": len(truth.ambiguous) if truth is not None else 0,
        "agents": len(rec.agents),
        "agent_errors": ctx.agent_errors if ctx is not None else 0,
        "registry_anomalies": truth.anomalies if truth is not None else 0,
    }
    error = drive.error
    manifest = {
        "run": run_id,
        "scenario": scn.name,
        "source": scn.source,
        "description": scn.description,
        "mode": mode,
        "engine": scn.resolved_engine(mode),
        "seed": scn.seed,
        "duration": scn.duration,
        "warmup": scn.warmup,
        "drain": scn.drain,
        "backend": label,
        "backend_versions": {**package_versions(), **(backends.versions if backends is not None else {})},
        "mcastlab_version": __version__,
        "git_revision": git_revision(),
        "machine": machine(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 3),
        "end_s": t_end,
        "interrupted": stop.requested,
        "signal": stop.signal,
        "exit_code": EXIT_CODES.get(stop.signal or "", 1 if error is not None else 0),
        "error": None if error is None else {
            "type": type(error).__name__, "message": str(error),
            "traceback": "".join(traceback.format_exception(error)[-8:])},
        "max_identities": scn.config.max_identities,
        "memory_estimate": estimate.to_dict(),
        "resources": drive.resources,
        "processes": ctx.replicas if isinstance(ctx, MergedRun) else None,
        "counts": counts,
        "warnings": run_warnings(scn, frames, ctx, t_end),
        "reference": scn.reference,
        "scenario_config": jsonable(scn.raw),
    }
    return RunResult(frames, manifest, truth={
        "deaths": [names[c] for c in deaths],
        "expected_expirations": [(names[c], d) for c, d in truth.expected_expiries] if truth else [],
        "ambiguous": sorted(names[c] for c in truth.ambiguous) if truth else [],
    })


__all__ = ["RunFailedError", "run_scenario"]
