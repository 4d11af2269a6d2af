"""Live mode on the asyncio runtime with embedded backends (no servers): plain, in a notebook, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from mcastlab.workloads import run_scenario

from .wl_helpers import LIVE_SMALL, SCENARIOS, check_columns, check_invariants

pytestmark = pytest.mark.timeout(60)
EMBEDDED = {"slots.registry": "memory", "slots.messaging": "memory"}


def _iot(**extra: object) -> dict[str, object]:
    return {**LIVE_SMALL["iot-device-management"], **EMBEDDED, **extra}


def test_live_mode_runs_on_asyncio_in_real_time() -> None:
    r = run_scenario(SCENARIOS / "iot-device-management.yaml", mode="live", overrides=_iot(), progress=False)
    assert r.manifest["mode"] == "live" and r.manifest["backend"] == "memory+memory"
    assert r.manifest["end_s"] >= 9 + 2  # the workload ran in real time to its duration and drain
    check_columns(r.frames)
    check_invariants(r)
    assert int(r.multicasts["missed"].sum()) == 0 and len(r.deliveries) > 0
    assert (r.ops["lag_s"] >= 0).all() and r.ops["lag_s"].max() > 0


def test_live_mode_inside_a_running_loop_like_jupyter() -> None:
    async def notebook_cell() -> object:
        return run_scenario(
            SCENARIOS / "prism-loadtest.yaml",
            mode="live",
            progress=False,
            overrides={**LIVE_SMALL["prism-loadtest"], **EMBEDDED, "duration": 2, "drain": 0.5},
        )

    r = asyncio.run(notebook_cell())
    assert len(r.ops) > 50 and r.ops["ok"].all()


def test_ctrl_c_stops_a_live_run_and_keeps_the_data() -> None:
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        r = run_scenario(
            SCENARIOS / "iot-device-management.yaml", mode="live", progress=False, overrides=_iot(duration=30)
        )
    finally:
        timer.cancel()
    assert r.manifest["interrupted"] is True
    assert 0 < r.manifest["end_s"] < 30 and len(r.ops) > 10  # stopped before the workload ended
    check_columns(r.frames)
