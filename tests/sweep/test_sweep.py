"""mcastlab.sweep on an in-process Dask cluster: outputs, a failed point, determinism, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import mcastlab
from mcastlab.errors import ScenarioError, UsageError
from mcastlab.sweep import SweepResult, load_sweep

HUGE = 10**9  # devices: the memory guard on the worker refuses this point at run time


@pytest.fixture(scope="module")
def swept(inproc: Any, tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    from tests.sweep.conftest import TINY

    out = tmp_path_factory.mktemp("sweep") / "s"
    return mcastlab.sweep(TINY, {"workload.rate.rate": [20, 60, HUGE]}, seeds=2, client=inproc, out=out,
                          progress=False)


def test_points_have_one_row_per_run_with_the_documented_columns(swept: SweepResult) -> None:
    p = swept.points
    assert len(p) == 6 and list(p["seed"]) == [3, 4] * 3  # the scenario's seed and the next
    assert list(p["workload.rate.rate"]) == [20, 20, 60, 60, HUGE, HUGE]
    assert p["workload.rate.rate"].dtype == "int64"
    for op in ("enumerate", "register", "multicast"):
        for s in ("count", "p50_s", "p99_s", "error_rate", "achieved_rate"):
            assert f"{op}_{s}" in p.columns
    assert {"run", "ok", "error", "wall_s", "cpu_s", "enumerate p50 < 2 ms", "all_passed"} <= set(p.columns)
    ok = p[p["ok"]]
    assert (ok["enumerate_count"] > 0).all() and ok["run"].notna().all()
    # register at 20/s for 7 measured seconds: ~70 samples, so no p99 (needs 100); at 60/s there is one
    assert ok.loc[ok["workload.rate.rate"] == 20, "register_p99_s"].isna().all()
    assert ok.loc[ok["workload.rate.rate"] == 60, "register_p99_s"].notna().all()
    assert ok["register_achieved_rate"].between(5, 40).all()


def test_a_failed_point_is_recorded_and_the_sweep_goes_on(swept: SweepResult) -> None:
    bad = swept.failed
    assert list(bad["workload.rate.rate"]) == [HUGE, HUGE]
    assert bad["error"].str.startswith("ResourceLimitError: ").all()
    assert bad["all_passed"].eq(False).all() and bad["enumerate_count"].isna().all()
    s = swept.summary.set_index("workload.rate.rate")
    assert s.loc[HUGE, "n_failed"] == 2 and s.loc[HUGE, "n_seeds"] == 0 and not s.loc[HUGE, "all_passed"]
    assert "2 of 2 runs failed" in s.loc[HUGE, "note"]
    assert s.loc[20, "n_seeds"] == 2 and s.loc[20, "note"] == ""


def test_summary_intervals_over_seeds(swept: SweepResult) -> None:
    p, s = swept.points, swept.summary.set_index("workload.rate.rate")
    x = p.loc[p["workload.rate.rate"] == 60, "enumerate_p50_s"]
    assert s.loc[60, "enumerate_p50_s"] == pytest.approx(x.mean())
    half = 12.706 * x.std(ddof=1) / 2**0.5  # 2 seeds: t with 1 degree of freedom
    assert s.loc[60, "enumerate_p50_s_hi"] == pytest.approx(x.mean() + half)
    assert s.loc[60, "enumerate_p50_s_n"] == 2
    assert (swept.summary.filter(like="_lo").fillna(0) >= 0).all().all()  # clipped: never negative
    assert s.loc[60, "enumerate_count"] == p.loc[p["workload.rate.rate"] == 60, "enumerate_count"].sum()
    # the target's column in the summary: passed on every seed
    at20 = p.loc[p["workload.rate.rate"] == 20, "enumerate p50 < 2 ms"]
    assert s.loc[20, "enumerate p50 < 2 ms"] == bool(at20.all())


def test_the_directory_holds_points_summary_frames_and_manifest(swept: SweepResult) -> None:
    out = swept.out_dir
    assert out is not None
    for f in ("points.parquet", "summary.parquet", "manifest.json", "frames/ops.parquet",
              "frames/targets.parquet"):
        assert (out / f).is_file(), f
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "sweep" and m["seeds"] == [3, 4]
    assert m["grid"] == {"workload.rate.rate": [20, 60, HUGE]}
    assert m["engine"] == "dask.distributed" and m["scheduler"] and m["workers"] == 2
    assert {"mcastlab", "dask", "distributed", "pandas"} <= set(m["versions"])
    ops = swept.frames["ops"]
    assert list(ops.columns[:2]) == ["workload.rate.rate", "seed"] and set(ops["seed"]) == {3, 4}
    assert ops.groupby("run")["workload.rate.rate"].nunique().eq(1).all()
    again = load_sweep(out)
    pd.testing.assert_frame_equal(again.points, swept.points)
    run = again.run(str(again.points["run"].iloc[2]))
    assert run.manifest["seed"] == 3 and len(run.ops) == int((ops["run"] == run.run).sum())


def test_same_grid_and_seeds_give_identical_points(inproc: Any, tiny: dict[str, Any],
                                                    swept: SweepResult) -> None:
    grid = {"workload.rate.rate": [20, 60]}
    a = mcastlab.sweep(tiny, grid, seeds=2, client=inproc, progress=False, frames=False)
    b = mcastlab.sweep(tiny, grid, seeds=2, client=inproc, progress=False, frames=False)
    clocks = ["run", "wall_s", "cpu_s"]
    pd.testing.assert_frame_equal(a.points.drop(columns=clocks), b.points.drop(columns=clocks))
    # and the same as those points of the first sweep, which also had a failing point and saved frames
    first = swept.points[swept.points["ok"]].reset_index(drop=True).drop(columns=clocks)
    pd.testing.assert_frame_equal(a.points.drop(columns=clocks), first, check_dtype=False)
    assert set(a.frames) == {"targets"}  # frames=False keeps the verdicts only


def test_bad_input_is_refused_before_anything_runs(inproc: Any, tiny: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"grid point workload\.rate\.rate=-5"):
        mcastlab.sweep(tiny, {"workload.rate.rate": [10, -5]}, client=inproc, progress=False)
    with pytest.raises(ScenarioError, match="nope"):
        mcastlab.sweep(tiny, {"workload.nope": [1]}, client=inproc, progress=False)
    with pytest.raises(UsageError, match="--seeds"):
        mcastlab.sweep(tiny, {"seed": [1, 2]}, client=inproc, progress=False)
    (tmp_path / "x").write_text("")
    with pytest.raises(UsageError, match="already holds files"):
        mcastlab.sweep(tiny, {"duration": [5]}, client=inproc, out=tmp_path, progress=False)


def test_local_workers_run_without_the_sampling_profiler(inproc: Any) -> None:
    """It holds task frames (and their numpy views of growing arrays) a moment too long: see _cluster."""
    profiled = inproc.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
    assert profiled and not any(profiled.values())
