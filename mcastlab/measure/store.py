"""RunResult, and runs on disk: one parquet file per frame plus ``manifest.json`` in a run directory."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from mcastlab.errors import UsageError
from mcastlab.measure.frames import FRAMES, conform, empty
from mcastlab.measure.stats import audit_totals, summary


@dataclass
class RunResult:
    """The frames of one run (``ops``, ``deliveries``, ``expirations``, ``population``, ``targets``,
    ``multicasts``), its manifest and where it was saved. ``truth`` (in memory only) lists the deaths
    injected and the expirations the ground truth expects."""

    frames: dict[str, pd.DataFrame]
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    truth: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ops(self) -> pd.DataFrame:
        return self.frames["ops"]

    @property
    def deliveries(self) -> pd.DataFrame:
        return self.frames["deliveries"]

    @property
    def expirations(self) -> pd.DataFrame:
        return self.frames["expirations"]

    @property
    def population(self) -> pd.DataFrame:
        return self.frames["population"]

    @property
    def targets(self) -> pd.DataFrame:
        return self.frames["targets"]

    @property
    def multicasts(self) -> pd.DataFrame:
        return self.frames["multicasts"]

    @property
    def timeseries(self) -> pd.DataFrame:
        """One row per window and operation: offered vs achieved rate, p50/p99, errors, population."""
        return self.frames.get("timeseries", empty("timeseries"))

    @property
    def interrupted(self) -> bool:
        return bool(self.manifest.get("interrupted"))

    @property
    def run(self) -> str:
        return str(self.manifest.get("run", ""))

    @property
    def warmup(self) -> float:
        return float(self.manifest.get("warmup", 0.0))

    def summary(self) -> pd.DataFrame:
        """Percentiles per measure (p50/p90/p99/p99.9/max), warm-up excluded."""
        return summary(self.frames, warmup=self.warmup)

    def audit(self) -> dict[str, int]:
        """Targeting-audit totals over all multicasts after warm-up."""
        mc = self.multicasts
        return audit_totals(mc[mc["t_start"] >= self.warmup])

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"RunResult({m.get('scenario')!r}, mode={m.get('mode')!r}, seed={m.get('seed')}, "
            f"ops={len(self.ops):,}, deliveries={len(self.deliveries):,}, "
            f"expirations={len(self.expirations):,}, out_dir={str(self.out_dir) if self.out_dir else None!r})"
        )


def prepare_out(out_dir: str | Path, *, force: bool = False) -> Path:
    """Make ``out_dir`` ready for one run, before the run starts: an existing non-empty directory is
    refused (runs never mix) unless ``force``, which replaces it whole. Checks it is writable."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; pass a directory path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(f"--out {out} already holds files (another run?); runs never share a directory. "
                             "Fix: pass a new --out, or --force to replace the directory whole")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".mcastlab-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write the run to {out}: {exc}. Fix: pass a writable --out DIR") from None
    return out


def new_run_dir(parent: str | Path, stem: str) -> Path:
    """A fresh directory ``parent/stem`` (or ``stem-2``, ``stem-3`` ...): created atomically, so two
    runs started in the same second never share one."""
    base = Path(parent)
    base.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        path = base / (stem if k == 1 else f"{stem}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise UsageError(f"{base} holds 10,000 runs named {stem}*; clean it up or pass --out")


def save_run(result: RunResult, out_dir: str | Path) -> Path:
    """Write each frame as ``<name>.parquet`` and the manifest as ``manifest.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in FRAMES:
        result.frames.get(name, empty(name)).to_parquet(out / f"{name}.parquet", index=False)
    (out / "manifest.json").write_text(json.dumps(result.manifest, indent=2, default=str) + "\n")
    result.out_dir = out
    return out


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run directory written by ``mcastlab run`` (frames keep their documented dtypes)."""
    d = Path(run_dir)
    if not (d / "manifest.json").is_file():
        raise UsageError(f"{d} is not a run directory (no manifest.json); give the --out directory of a run")
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{d}/manifest.json is unreadable or not JSON ({exc}); "
                         "is this a run directory written by 'mcastlab run'?") from None
    frames = {}
    for name in FRAMES:
        p = d / f"{name}.parquet"
        frames[name] = conform(pd.read_parquet(p), name) if p.is_file() else empty(name)
    return RunResult(frames, manifest, d)


def as_run(obj: RunResult | str | Path) -> RunResult:
    """A RunResult from itself or a run directory."""
    return obj if isinstance(obj, RunResult) else load_run(obj)


def compare_runs(a: RunResult | str | Path, b: RunResult | str | Path) -> pd.DataFrame:
    """Side by side: each measure's count/p50/p99/max in run ``a`` and ``b``, with the ratio b/a."""
    ra, rb = as_run(a), as_run(b)
    sa, sb = ra.summary(), rb.summary()
    ma, mb = ra.manifest.get("mode"), rb.manifest.get("mode")
    la = ra.manifest.get("label") or (ma if ma != mb and ma else ra.run) or "a"
    lb = rb.manifest.get("label") or (mb if ma != mb and mb else rb.run) or "b"
    if la == lb:
        la, lb = f"a:{la}", f"b:{lb}"
    rows = []
    for measure in list(dict.fromkeys([*sa.index, *sb.index])):
        for s in ("count", "mean", "p50", "p90", "p99", "p99.9", "max"):
            va = float(sa.loc[measure, s]) if measure in sa.index else float("nan")
            vb = float(sb.loc[measure, s]) if measure in sb.index else float("nan")
            rows.append(
                {
                    "measure": measure,
                    "stat": s,
                    la: va,
                    lb: vb,
                    "ratio": vb / va if va not in (0.0,) and va == va else float("nan"),
                }
            )
    for key, va in ra.audit().items():
        vb = rb.audit().get(key, 0)
        rows.append(
            {
                "measure": "audit",
                "stat": key,
                la: float(va),
                lb: float(vb),
                "ratio": vb / va if va else float("nan"),
            }
        )
    ta, tb = ra.targets.set_index("metric"), rb.targets.set_index("metric")
    for metric in list(dict.fromkeys([*ta.index, *tb.index])):
        va = float(ta.loc[metric, "achieved"]) if metric in ta.index else float("nan")
        vb = float(tb.loc[metric, "achieved"]) if metric in tb.index else float("nan")
        rows.append(
            {
                "measure": "target",
                "stat": metric,
                la: va,
                lb: vb,
                "ratio": vb / va if va and va == va else float("nan"),
            }
        )
    df = pd.DataFrame(rows)
    df["measure"] = df["measure"].astype("string")
    df["stat"] = df["stat"].astype("string")
    return df


# ---------------------------------------------------------------------- manifest helpers


def git_revision(start: str | Path | None = None) -> str:
    """The checkout's commit id, read from ``.git`` files (no git process), or "unknown"."""
    here = Path(start or Path(__file__).resolve()).resolve()
    for d in [here, *here.parents]:
        g = d / ".git"
        if g.is_dir():
            try:
                head = (g / "HEAD").read_text().strip()
                if not head.startswith("ref: "):
                    return head
                ref = head[5:]
                p = g / ref
                if p.is_file():
                    return p.read_text().strip()
                packed = g / "packed-refs"
                if packed.is_file():
                    for line in packed.read_text().splitlines():
                        if line.endswith(" " + ref):
                            return line.split()[0]
                return f"{ref} (no commits)"
            except OSError:
                return "unknown"
    return "unknown"


def machine() -> dict[str, Any]:
    """Where the run happened: OS, CPU count, Python."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "node": platform.node(),
    }


def package_versions(
    names: tuple[str, ...] = ("mcastlab", "numpy", "pandas", "simpy", "redis", "nats-py", "pyarrow"),
) -> dict[str, str]:
    """Installed versions of the packages a run depends on."""
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def jsonable(obj: Any) -> Any:
    """Tuples, dataclasses and numpy scalars to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


__all__ = [
    "RunResult",
    "as_run",
    "compare_runs",
    "git_revision",
    "jsonable",
    "load_run",
    "machine",
    "new_run_dir",
    "package_versions",
    "prepare_out",
    "save_run",
]
