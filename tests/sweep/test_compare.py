"""mcastlab compare with N runs and sweeps: runs named by the scenario keys that differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mcastlab
from mcastlab.cli import main
from mcastlab.sweep.compare import compare
from mcastlab.workloads import run_scenario


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from tests.sweep.conftest import TINY

    base = tmp_path_factory.mktemp("runs")
    dirs = []
    for name, overrides in (("a", {}), ("b", {"workload.rate.rate": 80}), ("c", {"seed": 9})):
        run_scenario(TINY, overrides={**overrides, "duration": 5}, out=base / name, progress=False)
        dirs.append(base / name)
    return dirs


def test_three_runs_are_named_by_what_differs(three_runs: list[Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    c = compare(*three_runs)
    assert c.keys == ["seed", "workload.rate.rate"]
    assert c.names == ["seed=3, workload.rate.rate=40", "seed=3, workload.rate.rate=80",
                       "seed=9, workload.rate.rate=40"]
    assert set(c.latency["index"]) == {1, 2, 3}
    assert set(c.targets["verdict"]) <= {"pass", "fail", "insufficient"}
    assert main(["compare", *map(str, three_runs)]) == 0
    out = capsys.readouterr().out
    assert "named by what differs between them: seed, workload.rate.rate" in out
    assert "[3] seed=9, workload.rate.rate=40" in out
    assert " µs" in out and " ms" in out  # latencies with units
    assert "enumerate p50 < 2 ms" in out and ("PASS" in out or "FAIL" in out)


def test_identical_settings_fall_back_to_the_run_id(three_runs: list[Path]) -> None:
    c = compare(three_runs[0], three_runs[0])
    assert c.keys == [] and c.names == [f"{c.runs[0].run} #1", f"{c.runs[0].run} #2"]


def test_a_sweep_expands_into_its_runs(three_runs: list[Path], inproc: Any, tiny: dict[str, Any],
                                       tmp_path: Path) -> None:
    s = mcastlab.sweep({**tiny, "duration": 5}, {"workload.rate.rate": [30, 50]}, client=inproc,
                       out=tmp_path / "s", progress=False)
    c = compare(three_runs[0], tmp_path / "s")
    assert len(c.runs) == 3 and c.keys == ["workload.rate.rate"]
    assert c.names == ["workload.rate.rate=40", "workload.rate.rate=30", "workload.rate.rate=50"]
    assert len(c.runs[1].ops) == int((s.frames["ops"]["run"] == c.runs[1].run).sum()) > 0


def test_compare_refuses_fewer_than_two_runs_or_a_missing_directory(
    three_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(three_runs[0])]) == 2
    assert main(["compare", str(three_runs[0]), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "at least two runs" in err and "no such directory" in err
