"""mcastlab.knee on an in-process cluster: a monotone synthetic case, and the two ways of having no knee.

The tiny load test's enumerate returns every registered identity, so its p50 grows with the request
rate; the target "enumerate p50 < 2 ms" passes at low rates and fails above roughly 55-90/s.
"""

from __future__ import annotations

from typing import Any

import pytest

import mcastlab
from mcastlab.errors import UsageError
from mcastlab.sweep import KneeResult

KEY = "workload.rate.rate"


@pytest.fixture
def found(tiny_knee: KneeResult) -> KneeResult:
    return tiny_knee


def test_the_knee_is_bracketed_by_a_pass_and_a_failure(found: KneeResult) -> None:
    assert found.status == "found" and found.found
    assert isinstance(found.value, int) and isinstance(found.failed_at, int)  # ints stay ints
    assert found.value == found.passed_at and 20 < found.value < found.failed_at <= 160
    assert found.failed_at - found.value <= max(1, 0.1 * found.value)  # --tolerance 0.1
    assert found.first_failing_target == "enumerate p50 < 2 ms"
    fail = found.failing.iloc[0]
    assert fail["verdict"] == "fail" and fail["achieved"] >= 0.002 and fail["n"] >= 20


def test_every_probe_is_recorded_with_its_step(found: KneeResult) -> None:
    p = found.points
    assert p[KEY].dtype == "int64" and p["ok"].all()
    assert set(p.loc[p["step"] == 0, KEY]) == {20, 55, 90, 125, 160}  # both ends + 3 interior probes
    step0 = list(p.loc[p["step"] == 0].sort_values(KEY)["all_passed"])
    assert step0[0] and not step0[-1] and step0 == sorted(step0, reverse=True)  # passes, then failures
    assert p["step"].max() >= 1
    by_value = p.groupby(KEY)["all_passed"].all()
    # monotone here: every probe at or below the knee passed, every one above it failed
    assert by_value[by_value.index <= found.value].all() and not by_value[by_value.index > found.value].any()
    assert found.manifest["kind"] == "knee" and found.manifest["status"] == "found"
    assert not found.warnings


def _with_threshold(tiny: dict[str, Any], below: float) -> dict[str, Any]:
    tiny["targets"] = [{"metric": "latency", "op": "enumerate", "stat": "p50", "below": below,
                        "name": "enumerate p50"}]
    return tiny


def test_low_already_failing_is_said(inproc: Any, tiny: dict[str, Any]) -> None:
    k = mcastlab.knee(_with_threshold(tiny, 1e-6), KEY, 20, 40, probes=1, client=inproc, progress=False)
    assert k.status == "low fails" and k.value is None and k.failed_at == 20
    assert k.first_failing_target == "enumerate p50"
    assert set(k.points[KEY]) == {20, 30, 40}  # one step: the ends and one probe


def test_high_still_passing_is_said(inproc: Any, tiny: dict[str, Any]) -> None:
    k = mcastlab.knee(_with_threshold(tiny, 1.0), KEY, 20, 40, probes=1, client=inproc, progress=False)
    assert k.status == "high passes" and k.value == 40 and k.failed_at is None
    assert k.first_failing_target is None


def test_insufficient_counts_as_not_passed(inproc: Any, tiny: dict[str, Any]) -> None:
    """At 5 requests/s enumerate gets ~10 samples in 7 s: too few for a p50 (20), so the low end fails."""
    k = mcastlab.knee(_with_threshold(tiny, 1.0), KEY, 5, 40, probes=1, client=inproc, progress=False)
    assert k.status == "low fails"
    assert set(k.failing["verdict"]) == {"insufficient"}


@pytest.mark.parametrize(("args", "says"), [
    ((40, 20), "below --high"),
    (("a", 20), "finite number"),
    ((1.0, 2.0, 0.0), "never ends"),
])
def test_bad_ranges_are_refused(inproc: Any, tiny: dict[str, Any], args: tuple[Any, ...], says: str) -> None:
    low, high, *tol = args
    with pytest.raises(UsageError, match=says):
        mcastlab.knee(tiny, KEY, low, high, tolerance=tol[0] if tol else 0.05, client=inproc, progress=False)
