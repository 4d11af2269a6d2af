"""The parts of a sweep that need no cluster: grid parsing, the pass rule, per-run figures, intervals."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mcastlab.errors import UsageError
from mcastlab.sweep._grid import check_grid, column, parse_grid, points, seeds_from
from mcastlab.sweep._points import MIN_P50, MIN_P99, op_metrics, target_flags
from mcastlab.sweep._summary import _T975, interval, t975
from mcastlab.sweep.compare import differing, flatten

ROOT = Path(__file__).resolve().parents[2]


def test_grid_is_parsed_typed_and_expanded_in_order() -> None:
    grid = parse_grid(["workload.devices=1000,2000", "slots.registry=redis,memory"])
    assert grid == {"workload.devices": [1000, 2000], "slots.registry": ["redis", "memory"]}
    assert points(grid)[:2] == [(("workload.devices", 1000), ("slots.registry", "redis")),
                                (("workload.devices", 1000), ("slots.registry", "memory"))]
    assert column([1000, 2000]).dtype == "int64"
    assert column([1, 0.5]).dtype == "float64"
    assert column(["a", 1]).dtype == "string"
    assert seeds_from(42, 3) == [42, 43, 44]


@pytest.mark.parametrize(("pairs", "says"), [
    (["workload.devices"], "KEY=V1,V2"),
    (["workload.devices=1,,2"], "empty value"),
    (["seed=1,2"], "--seeds N"),
    (["workload.devices=1,1"], "twice"),
    (["workload.devices=1", "workload.devices=2"], "given twice"),
    (["workload.heartbeat=[1,2]"], "scalar"),
])
def test_bad_grids_are_refused_with_a_fix(pairs: list[str], says: str) -> None:
    with pytest.raises(UsageError, match="Fix|twice") as err:
        parse_grid(pairs)
    assert says in str(err.value)


def test_a_key_cannot_be_both_swept_and_fixed() -> None:
    with pytest.raises(UsageError, match="both swept"):
        check_grid({"duration": [10, 20]}, {"duration": 30})
    with pytest.raises(UsageError, match="--seeds"):
        seeds_from(1, 0)


def _targets(verdicts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"metric": [f"t{i}" for i in range(len(verdicts))], "verdict": verdicts})


@pytest.mark.parametrize(("verdicts", "all_passed"), [
    (["pass", "pass"], True),
    (["pass", "no data"], True),  # no data: left out
    (["pass", "insufficient"], False),  # insufficient: not passed
    (["pass", "fail"], False),
    (["no data", "no data"], False),  # nothing was shown to pass
])
def test_the_pass_rule(verdicts: list[str], all_passed: bool) -> None:
    flags = target_flags(_targets(verdicts))
    assert flags["all_passed"] is all_passed
    assert [flags[f"t{i}"] for i in range(len(verdicts))] == [v == "pass" for v in verdicts]


class _Run:
    def __init__(self, n_ok: int, n_err: int) -> None:
        lat = np.linspace(0.001, 0.002, n_ok)
        self.ops = pd.DataFrame({
            "op": ["enumerate"] * (n_ok + n_err) + ["register"] * 5,
            # register: only in the warm-up
            "t_start": np.concatenate([np.linspace(10, 99, n_ok + n_err), np.full(5, 1.0)]),
            "latency_s": np.concatenate([lat, np.full(n_err, 9.0), np.full(5, 0.1)]),
            "ok": [True] * n_ok + [False] * n_err + [True] * 5,
        })
        self.manifest = {"warmup": 10.0, "duration": 100.0, "end_s": 105.0}


def test_percentiles_need_the_targets_minimum_samples() -> None:
    assert (MIN_P50, MIN_P99) == (20, 100)
    few = op_metrics(_Run(50, 50))
    assert few["enumerate_count"] == 50 and few["enumerate_p50_s"] == pytest.approx(0.0015)
    assert math.isnan(few["enumerate_p99_s"])  # 50 < 100 samples
    assert few["enumerate_error_rate"] == pytest.approx(0.5)
    assert few["enumerate_achieved_rate"] == pytest.approx(50 / 90)  # successful ops per measured second
    assert "register_count" not in few  # only warm-up operations
    many = op_metrics(_Run(200, 0))
    assert many["enumerate_p99_s"] == pytest.approx(np.percentile(np.linspace(0.001, 0.002, 200), 99))


def test_t_table_matches_the_t_distribution() -> None:
    """Each tabulated 0.975 quantile, checked against a numerical integral of Student's t density."""
    for df, t in _T975.items():
        x = np.linspace(0.0, t, 200_001)
        c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        pdf = np.exp(c) * (1 + x * x / df) ** (-(df + 1) / 2)
        cdf = 0.5 + float(np.sum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x)))
        assert cdf == pytest.approx(0.975, abs=2e-4), df
    assert t975(35) == _T975[30] and t975(5000) == 1.96 and math.isnan(t975(0))


def test_interval_of_the_mean() -> None:
    mean, lo, hi, n = interval([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert hi - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert lo == pytest.approx(2 * mean - hi)
    one = interval([5.0])
    assert one[0] == 5.0 and math.isnan(one[1]) and math.isnan(one[2]) and one[3] == 1


def test_flatten_and_differing_keys() -> None:
    a = {"seed": 1, "workload": {"devices": 10, "rate": {"rate": 5}}, "targets": [{"below": 0.1}]}
    b = {"seed": 2, "workload": {"devices": 10, "rate": {"rate": 6}}, "targets": [{"below": 0.1}]}
    assert flatten(a)["workload.rate.rate"] == 5 and flatten(a)["targets.0.below"] == 0.1
    assert differing([a, b]) == ["seed", "workload.rate.rate"]
    assert differing([a, {**a, "extra": 1}]) == ["extra"]


def test_importing_mcastlab_loads_no_dask_and_sweep_stays_callable() -> None:
    code = ("import sys, mcastlab; assert 'distributed' not in sys.modules and 'dask' not in sys.modules; "
            "import mcastlab.sweep._grid; assert callable(mcastlab.sweep) and callable(mcastlab.knee); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "ok", out.stderr
