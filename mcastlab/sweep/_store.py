"""SweepResult, and sweeps on disk.

A sweep directory holds::

    points.parquet      one row per run (mcastlab.sweep._points)
    summary.parquet     one row per grid point over its seeds (mcastlab.sweep._summary)
    frames/<name>.parquet   the runs' frames concatenated (ops, deliveries, ..., targets), with the swept
                        keys and ``seed`` as extra leading columns (the ``run`` column tells runs apart)
    manifest.json       kind "sweep", the scenario, overrides, grid, seeds, mode, cluster (engine,
                        scheduler address, workers), versions, wall time, and per grid point its values,
                        warm-up and duration
    plots/              (written by the command line) each percentile against the swept key
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mcastlab.errors import UsageError
from mcastlab.measure.frames import FRAMES, empty
from mcastlab.measure.store import RunResult
from mcastlab.sweep._grid import column
from mcastlab.sweep._points import PointRecord


@dataclass
class SweepResult:
    """A sweep: ``points`` (one row per run), ``summary`` (one row per grid point), ``frames`` (the
    runs' frames concatenated, swept keys as columns), ``manifest`` and where it was saved."""

    points: pd.DataFrame
    summary: pd.DataFrame
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def keys(self) -> list[str]:
        """The swept keys, in grid order."""
        return list(self.manifest.get("grid", {}))

    @property
    def failed(self) -> pd.DataFrame:
        """The runs that raised, with their error."""
        return self.points[~self.points["ok"]]

    @property
    def interrupted(self) -> bool:
        return bool(self.manifest.get("interrupted"))

    def run(self, run_id: str) -> RunResult:
        """One run of the sweep as a :class:`~mcastlab.measure.RunResult` (its slice of the frames)."""
        row = self.points[self.points["run"] == run_id]
        if not len(row) or not bool(row["ok"].iloc[0]):
            raise UsageError(f"{run_id!r} is not a successful run of this sweep; see points['run']")
        r = row.iloc[0]
        points = self.manifest.get("points", [])
        point = points[int(r["point"])] if int(r["point"]) < len(points) else {}
        frames = {}
        for name, df in self.frames.items():
            sub = df[df["run"] == run_id] if "run" in df.columns else df.iloc[0:0]
            frames[name] = sub.drop(columns=[c for c in (*self.keys, "seed") if c in sub.columns])
        frames = {n: frames.get(n, empty(n)).reset_index(drop=True) for n in FRAMES}
        values = {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in self.keys}
        manifest = {"run": run_id, "scenario": self.manifest.get("scenario"),
                    "mode": self.manifest.get("mode"), "seed": int(r["seed"]),
                    "warmup": point.get("warmup", 0.0),
                    "duration": point.get("duration"), "sweep_values": values,
                    "scenario_config": self.manifest.get("scenario_config")}
        return RunResult(frames, manifest, self.out_dir)

    def __repr__(self) -> str:
        n, bad = len(self.points), int((~self.points["ok"]).sum()) if len(self.points) else 0
        return (f"SweepResult({self.manifest.get('scenario')!r}, keys={self.keys}, runs={n}, failed={bad}, "
                f"out_dir={str(self.out_dir) if self.out_dir else None!r})")


def concat_frames(records: Sequence[PointRecord], grid: dict[str, list[Any]]) -> dict[str, pd.DataFrame]:
    """The frames of the successful runs, concatenated, with typed swept-key and seed columns in front
    (``targets`` is always there; the others only when the runs sent their frames)."""
    typed = {k: dict(zip(map(repr, v), column(v), strict=True)) for k, v in grid.items()}
    dtypes = {k: column(v).dtype for k, v in grid.items()}
    parts: dict[str, list[pd.DataFrame]] = {}
    for r in records:
        if not r.ok:
            continue
        frames = dict(r.frames or {})
        if r.targets is not None:
            frames["targets"] = r.targets
        lead = {k: typed[k][repr(v)] for k, v in r.values} | {"seed": r.seed}
        for name, df in frames.items():
            parts.setdefault(name, []).append(df.assign(**lead)[[*lead, *df.columns]])
    out = {}
    for name, dfs in parts.items():
        df = pd.concat(dfs, ignore_index=True)
        out[name] = df.astype({**dtypes, "seed": "int64"})
    return out


def save_sweep(result: SweepResult, out_dir: str | Path) -> Path:
    """Write a sweep directory (see the module docstring)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.points.to_parquet(out / "points.parquet", index=False)
    result.summary.to_parquet(out / "summary.parquet", index=False)
    if result.frames:
        (out / "frames").mkdir(exist_ok=True)
        for name, df in result.frames.items():
            df.to_parquet(out / "frames" / f"{name}.parquet", index=False)
    (out / "manifest.json").write_text(json.dumps(result.manifest, indent=2, default=str) + "\n")
    result.out_dir = out
    return out


def is_sweep_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / "points.parquet").is_file() and (p / "manifest.json").is_file()


def load_sweep(sweep_dir: str | Path) -> SweepResult:
    """Read a sweep directory written by ``mcastlab sweep`` (or :func:`mcastlab.sweep`)."""
    d = Path(sweep_dir)
    if not is_sweep_dir(d):
        raise UsageError(f"{d} is not a sweep directory (no points.parquet and manifest.json); "
                         "give the --out directory of 'mcastlab sweep'")
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{d}/manifest.json is unreadable or not JSON ({exc})") from None
    summary = pd.read_parquet(d / "summary.parquet") if (d / "summary.parquet").is_file() else pd.DataFrame()
    frames = {p.stem: pd.read_parquet(p) for p in sorted((d / "frames").glob("*.parquet"))}
    return SweepResult(pd.read_parquet(d / "points.parquet"), summary, frames, manifest, d)


__all__ = ["SweepResult", "concat_frames", "is_sweep_dir", "load_sweep", "save_sweep"]
