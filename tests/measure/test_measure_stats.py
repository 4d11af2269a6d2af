"""Percentiles from raw rows, rolling rates, targets and comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mcastlab.measure import RunResult, compare_runs, describe, evaluate, format_table, rolling_rate, summary
from mcastlab.measure.frames import conform, empty
from mcastlab.measure.stats import stat
from mcastlab.measure.targets import SPEC_TARGETS, TargetSpec


def test_describe_matches_numpy() -> None:
    x = np.random.default_rng(0).lognormal(size=10_001)
    d = describe(np.append(x, np.nan))
    assert d["count"] == 10_001 and d["max"] == x.max() and d["mean"] == pytest.approx(x.mean())
    for k, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
        assert d[k] == pytest.approx(np.percentile(x, q))
    assert np.isnan(describe([])["p99"]) and describe([])["count"] == 0
    assert stat(x, "p99.9") == pytest.approx(np.percentile(x, 99.9)) and stat(x, "count") == 10_001
    with pytest.raises(ValueError, match="unknown statistic"):
        stat(x, "median")


def test_rolling_rate() -> None:
    t = np.concatenate([np.linspace(0, 100, 101), np.full(600, 500.0)])
    assert rolling_rate(t, 300) == pytest.approx(600 / 300)
    assert rolling_rate([], 300) == 0.0


def _run(latencies: list[float], op: str = "enumerate", matched: int = 1000, warm: float = 0.0) -> RunResult:
    n = len(latencies)
    ops = conform(
        pd.DataFrame(
            {
                "op": [op] * n,
                "t_start": np.arange(n, dtype=float),
                "latency_s": latencies,
                "ok": [True] * n,
                "matched": [matched] * n,
                "lag_s": 0.0,
                "run": "x",
            }
        ),
        "ops",
    )
    frames = {k: empty(k) for k in ("deliveries", "expirations", "population", "multicasts", "targets")}
    frames["ops"] = ops
    return RunResult(frames, {"run": "x", "warmup": warm, "mode": "sim"})


def test_summary_excludes_warmup_rows() -> None:
    r = _run([1.0] * 10 + [0.001] * 90, warm=10.0)
    s = summary(r.frames, warmup=10.0)
    assert s.loc["enumerate", "count"] == 90 and s.loc["enumerate", "max"] == pytest.approx(0.001)


def test_targets_pass_fail_and_na() -> None:
    r = _run([0.001] * 98 + [0.05, 0.06])
    t = evaluate(
        [
            *SPEC_TARGETS,
            TargetSpec("latency", 0.1, "<", "max", "enumerate", name="max"),
            TargetSpec("missed", 0, "<=", name="missed"),
        ],
        r.frames,
        run="x",
    )
    got = dict(zip(t["metric"], t["passed"], strict=True))
    verdict = dict(zip(t["metric"], t["verdict"], strict=True))
    assert not got["enumerate p99 (SlowEnumerateLatency alert)"]
    assert got["max"] and pd.isna(got["multicast to 100 identities p99 (100–999 matched)"])
    assert verdict["multicast to 100 identities p99 (100–999 matched)"] == "no data"
    assert pd.isna(got["missed"]) and verdict["missed"] == "insufficient"  # no multicast: nothing audited
    row = t.set_index("metric").loc["enumerate p99 (SlowEnumerateLatency alert)"]
    assert row["achieved"] == pytest.approx(np.percentile([0.001] * 98 + [0.05, 0.06], 99))
    text = format_table(t)
    assert "FAIL" in text and "PASS" in text and "n/a" in text and "< 20.00 ms" in text
    assert "insufficient (n < 1)" in text


@pytest.mark.parametrize(("stat", "n", "needed"), [
    ("p99", 99, 100), ("p99.9", 999, 1000), ("p50", 19, 20), ("mean", 19, 20), ("p95", 19, 20),
    ("p99.99", 9_999, 10_000)])
def test_a_percentile_on_too_few_samples_is_insufficient_never_pass(stat: str, n: int, needed: int) -> None:
    fast = TargetSpec("latency", 1.0, "<", stat, "enumerate", name="t")
    assert fast.required == needed
    few, enough = _run([0.001] * n), _run([0.001] * (n + 1))
    row = evaluate([fast], few.frames).iloc[0]
    assert row["verdict"] == "insufficient" and pd.isna(row["passed"]) and row["n"] == n
    assert row["min_samples"] == needed
    row = evaluate([fast], enough.frames).iloc[0]
    assert (row["verdict"] == "pass" and row["passed"] is True) or row["passed"] == True  # noqa: E712


def test_min_samples_is_settable_per_target() -> None:
    t = TargetSpec("latency", 1.0, "<", "p99", "enumerate", name="t", min_samples=5)
    assert evaluate([t], _run([0.001] * 5).frames).iloc[0]["verdict"] == "pass"
    assert evaluate([t], _run([0.001] * 4).frames).iloc[0]["verdict"] == "insufficient"


def test_the_expiration_rate_alert_needs_a_whole_window_and_an_expiration() -> None:
    alert = next(t for t in SPEC_TARGETS if t.metric == "expiration_rate")
    r = _run([0.001] * 5)
    assert evaluate([alert], r.frames, span=1_000).iloc[0]["verdict"] == "insufficient"  # n = 0


def test_compare_runs_side_by_side() -> None:
    a, b = _run([0.001] * 100), _run([0.002] * 100)
    a.manifest["label"], b.manifest["label"] = "sim", "live"
    df = compare_runs(a, b)
    assert {"measure", "stat", "sim", "live", "ratio"} <= set(df.columns)
    row = df[(df["measure"] == "enumerate") & (df["stat"] == "p50")].iloc[0]
    assert row["ratio"] == pytest.approx(2.0)
