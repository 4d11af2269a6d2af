"""Figures: one per view, fixed size and dpi, drawable from a run or a run directory."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure

from mcastlab import plots
from mcastlab.measure import RunResult, save_run
from mcastlab.measure.frames import empty
from mcastlab.workloads import run_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run() -> RunResult:
    return run_scenario(
        ROOT / "scenarios/iot-device-management.yaml",
        progress=False,
        overrides={
            "workload.devices": 200,
            "duration": 400,
            "workload.deaths": {"fraction": 0.05, "start": 30, "end": 60},
        },
    )


@pytest.mark.parametrize("name", sorted(plots.FIGURES))
def test_each_figure_has_fixed_size_and_dpi(run: RunResult, name: str) -> None:
    fig = plots.FIGURES[name](run)
    assert isinstance(fig, Figure)
    assert tuple(fig.get_size_inches()) in (plots.FIGSIZE, plots.TALL_FIGSIZE) and fig.dpi == plots.DPI
    assert fig.axes and fig.axes[0].get_title()


def test_figures_of_an_empty_run_say_so() -> None:
    empty_run = RunResult(
        {k: empty(k) for k in ("ops", "deliveries", "expirations", "population", "targets", "multicasts")},
        {"scenario": "x", "mode": "sim"},
    )
    for fn in plots.FIGURES.values():
        assert isinstance(fn(empty_run), Figure)


def test_save_all_and_overlay(run: RunResult, tmp_path: Path) -> None:
    d = save_run(run, tmp_path / "run")
    paths = plots.save_all(d, tmp_path / "plots")
    assert len(paths) == len(plots.FIGURES) and all(p.stat().st_size > 5_000 for p in paths)
    fig = plots.overlay([run, d], labels=["sim", "sim again"])
    assert len(fig.axes) >= 2 and tuple(fig.get_size_inches()) == plots.FIGSIZE
