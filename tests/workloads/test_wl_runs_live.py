"""Every shipped scenario in live mode, at small scale, against Redis + NATS started by the tests."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab.workloads import run_scenario

from .wl_helpers import LIVE_SMALL, SCENARIOS, check_columns, check_invariants

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


@pytest.fixture(scope="module", params=sorted(LIVE_SMALL))
def live_run(request: pytest.FixtureRequest, urls: dict[str, str]) -> Any:
    name = request.param
    over = {**LIVE_SMALL[name], "slots.registry.url": urls["redis"], "slots.messaging.servers": urls["nats"]}
    return run_scenario(SCENARIOS / f"{name}.yaml", mode="live", overrides=over, progress=False)


def test_live_frames_and_invariants(live_run: Any) -> None:
    check_columns(live_run.frames)
    assert live_run.manifest["mode"] == "live" and live_run.manifest["backend"] == "redis+nats"
    ops = live_run.ops
    assert len(ops) > 20 and ops["ok"].mean() > 0.95, ops[~ops["ok"]]["error"].value_counts()
    assert (ops["lag_s"] >= 0).all()
    check_invariants(live_run)


def test_live_multicasts_reach_their_targets(live_run: Any) -> None:
    mc = live_run.multicasts
    assert len(mc) > 0
    assert int(mc["targeted"].sum()) > 0
    # recipients alive and matching (not racing an operation) were targeted and reached
    assert int(mc["missed"].sum()) <= 0.02 * max(1, int(mc["expected"].sum()))


def test_live_deaths_expire_once(live_run: Any) -> None:
    due = {n for n, _ in live_run.truth["expected_expirations"]} & set(live_run.truth["deaths"])
    ex = live_run.expirations
    for name in due:
        assert (ex["identity"] == name).sum() == 1, name
    if live_run.manifest["scenario"] == "iot-device-management":
        assert len(due) == len(live_run.truth["deaths"]) > 0


def test_live_runs_report_the_pipeline_lanes_beside_the_processes(live_run: Any) -> None:
    """The Redis client's pipeline lanes are a resource of the live run too: their busy fraction is
    reported with the processes' CPU, and is a fraction of the run's lane-seconds."""
    res = live_run.manifest["resources"]
    busy, used = res["busy"]["registry-lanes"], res["cpu_s"]["registry-lanes"]
    assert 0.0 < busy <= 1.0 and used > 0
    assert busy == pytest.approx(used / (res["wall_s"] * 2), abs=1e-3)  # two lanes, the default
