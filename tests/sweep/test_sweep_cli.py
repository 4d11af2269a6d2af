"""The command line: mcastlab sweep / knee against the in-process cluster (through --scheduler), bad
input, and the one test that starts real worker processes (--workers 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import mcastlab
from mcastlab.cli import main


@pytest.fixture
def scenario_file(tiny: dict[str, Any], tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(tiny, sort_keys=False))  # key order matters: e.g. the mix's draws
    return p


def test_sweep_prints_intervals_counts_and_targets_and_writes_its_directory(
    inproc: Any, scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    code = main(["sweep", str(scenario_file), "--grid", "workload.rate.rate=20,60", "--seeds", "2",
                 "--scheduler", inproc.scheduler.address, "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "2 grid points x 2 seeds (3, 4) = 4 runs on dask.distributed" in text
    assert "p50 (mean [95 % interval])" in text and " µs [" in text and "count" in text
    assert "targets by grid point (workload.rate.rate)" in text and "enumerate p50 < 2 ms" in text
    assert f"written to {out}" in text
    assert {p.name for p in (out / "plots").glob("*.png")} == {
        "enumerate-percentiles.png", "multicast-percentiles.png", "register-percentiles.png"}
    assert (out / "points.parquet").is_file() and (out / "frames" / "ops.parquet").is_file()
    # a second sweep into the same directory is refused, as for run
    assert main(["sweep", str(scenario_file), "--grid", "duration=5", "--out", str(out),
                 "--scheduler", inproc.scheduler.address, "--no-progress"]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_knee_prints_the_knee_and_the_first_failing_target(
    inproc: Any, scenario_file: Path, capsys: pytest.CaptureFixture[str], tiny_knee: Any
) -> None:
    code = main(["knee", str(scenario_file), "--param", "workload.rate.rate", "--low", "20",
                 "--high", "160", "--tolerance", "0.1", "--scheduler", inproc.scheduler.address,
                 "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "step 0: 20 pass, 55 " in text and "160 FAIL" in text
    # the same knee as mcastlab.knee finds for the same scenario (as a dict), and the same failing target
    assert f"knee: workload.rate.rate = {tiny_knee.value}\n" in text
    above = f"above it, at workload.rate.rate = {tiny_knee.failed_at}, fails first: enumerate p50 < 2 ms"
    assert above in text


@pytest.mark.parametrize(("ends", "says"), [(("20", "40", "0.000001"), "(--low) already fails"),
                                            (("20", "40", "1.0"), "(--high) still passes")])
def test_knee_exits_1_when_the_knee_is_outside_the_range(
    inproc: Any, scenario_file: Path, capsys: pytest.CaptureFixture[str], ends: tuple[str, str, str],
    says: str,
) -> None:
    low, high, below = ends
    target = f"targets=[{{metric: latency, op: enumerate, stat: p50, below: {below}}}]"
    code = main(["knee", str(scenario_file), "--param", "workload.rate.rate", "--low", low, "--high", high,
                 "--probes", "1", "--set", target,
                 "--scheduler", inproc.scheduler.address, "--no-progress"])
    assert code == 1
    assert says in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "says"), [
    (["sweep", "{f}", "--grid", "workload.rate.rate"], "KEY=V1,V2"),
    (["sweep", "{f}", "--grid", "workload.nope=1,2", "--workers", "1"], "workload.nope"),
    (["sweep", "{f}", "--grid", "duration=5", "--workers", "0"], "--workers 0"),
    (["sweep", "{f}", "--grid", "duration=5", "--workers", "1", "--scheduler", "tcp://x:1"], "not allowed"),
    (["knee", "{f}", "--param", "workload.rate.rate", "--low", "ten", "--high", "20"], "--low 'ten'"),
])
def test_bad_input_exits_2_naming_the_option(
    scenario_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main([a.replace("{f}", str(scenario_file)) for a in argv]) == 2
    assert says in capsys.readouterr().err


def test_an_unreachable_scheduler_is_refused(
    scenario_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mcastlab.dask_cluster.CONNECT_TIMEOUT", 1.0)
    assert main(["sweep", str(scenario_file), "--grid", "duration=5", "--scheduler", "tcp://127.0.0.1:9",
                 "--no-progress", "--out", str(scenario_file.parent / "o")]) == 2
    err = capsys.readouterr().err
    assert "no Dask scheduler answered" in err and "dask scheduler" in err


def test_help_lists_the_commands_and_states_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "sweep" in capsys.readouterr().out
    assert main(["sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "'insufficient'" in text and "counts as not passed" in text and "dask worker" in text
    assert main(["knee", "--help"]) == 0
    assert "monotony" in capsys.readouterr().out


def test_real_worker_processes_give_the_same_points(
    inproc: Any, scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one test that starts a LocalCluster of worker processes: a failing point is recorded (exit 1)
    and the other points equal those of the in-process cluster, run for run."""
    out = tmp_path / "procs"
    code = main(["sweep", str(scenario_file), "--grid", "workload.rate.rate=20,60,1000000000",
                 "--seeds", "2", "--workers", "2", "--out", str(out), "--no-progress", "--no-plots"])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "2 runs failed (recorded in points.parquet)" in text and "ResourceLimitError" in text
    m = json.loads((out / "manifest.json").read_text())
    assert m["workers"] == 2 and m["threads"] == 2 and m["scheduler"].startswith("tcp://127.0.0.1:")
    procs = pd.read_parquet(out / "points.parquet")
    assert procs["ok"].sum() == 4
    threads = mcastlab.sweep(scenario_file, {"workload.rate.rate": [20, 60]}, seeds=2, client=inproc,
                             progress=False, frames=False).points
    clocks = ["run", "wall_s", "cpu_s"]
    pd.testing.assert_frame_equal(procs[procs["ok"]].reset_index(drop=True).drop(columns=clocks),
                                  threads.drop(columns=clocks), check_dtype=False)
