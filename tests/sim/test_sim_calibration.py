"""Calibration without servers: the workload runs in sim, fitting round-trips, errors are clear."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab import Config, Coordinator
from mcastlab.calibrate import compare, format_table, main
from mcastlab.errors import UnsupportedError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends
from mcastlab.sim.calibration import build_calibration, load_calibration, save_calibration
from mcastlab.workloads.calibration_load import run_workload

PARAMS = {"n": 30, "n_small": 5, "reps": 80, "batch": 20}


def sim_workload(spec: Any, seed: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(seed))
    coord = Coordinator(
        Config(max_identities=None, default_ttl=3600.0), registry=reg, messaging=msg, runtime=rt, name="cal"
    )

    def server_usec() -> float:  # the simulated server's busy time, as Redis' commandstats would give
        return reg.server.busy * 1e6

    def cpu_seconds() -> float:  # the simulated process CPU's busy time, as process_time would give
        assert reg.cpu is not None
        return reg.cpu.server.busy

    async def go() -> Any:
        async with coord:
            return await run_workload(coord, seed=seed, server_usec=server_usec, cpu_seconds=cpu_seconds,
                                      **PARAMS)

    return rt.run(go())


def test_fit_from_sim_measurements_reproduces_them(tmp_path: Path) -> None:
    truth = {
        "registry": {
            "service": {"default": 2e-5, "query": {"kind": "constant", "value": 3e-5, "per_item": 1e-6}},
            "network": {
                "default": {"kind": "lognormal", "median": 1.5e-4, "sigma": 0.2},
                "query": {"kind": "lognormal", "median": 1.5e-4, "sigma": 0.2, "per_item": 2e-6},
            },
        },
        "messaging": {"per_message": 2e-5, "per_request": 5e-5},
    }
    lat, extras = sim_workload(truth, seed=1)
    assert set(extras["server_s"]) >= {"register", "heartbeat", f"enumerate_{PARAMS['n']}"}
    assert extras["server_s"]["register"] == pytest.approx(2e-5, rel=0.1)  # + the sweeper's calls
    data = build_calibration(lat, extras, params={**PARAMS, "seed": 1}, servers={"redis": "sim"})
    fitted = data["sim"]["registry"]["service"]["query"]
    assert extras["wide_n"] > PARAMS["n"] and "enumerate_wide" in extras["server_s"]
    assert fitted["per_item"] == pytest.approx(1e-6, rel=0.1)
    path = save_calibration(data, tmp_path / "cal.json")
    assert load_calibration(path)["params"]["n"] == PARAMS["n"]
    spec = SimSpec.from_dict({"calibration": str(path)})
    assert spec.messaging.per_message.median() == pytest.approx(2e-5, rel=0.2)
    again, _ = sim_workload(spec, seed=2)
    n = PARAMS["n"]
    for label in ("register", "heartbeat", f"enumerate_{n}", f"multicast_publish_{n}"):
        assert np.median(again[label]) == pytest.approx(np.median(lat[label]), rel=0.1), label
        assert np.percentile(again[label], 99) == pytest.approx(np.percentile(lat[label], 99), rel=0.25), (
            label
        )
    table = compare(lat, again, n)
    assert list(table.columns) == [
        "op",
        "live_p50",
        "sim_p50",
        "rel_err_p50",
        "live_p99",
        "sim_p99",
        "rel_err_p99",
    ]
    assert "PASS" in format_table(table)
    stored = json.loads(path.read_text())
    assert {"machine", "measurements", "sim", "params"} <= set(stored)
    assert stored["measurements"]["register"]["lognormal"]["median"] > 0


def test_calibrate_without_live_backends_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mcastlab.backends.nats_messaging", None)
    from mcastlab.calibrate import _live_classes

    with pytest.raises(UnsupportedError, match="NatsMessaging"):
        _live_classes()
    assert main(["--quick", "--out", "/nonexistent/never-written.json"]) == 2
    assert "live backends" in capsys.readouterr().err


def test_committed_default_calibration_loads() -> None:
    spec = SimSpec.from_dict({"calibration": "default"})
    assert spec.calibration == "default"
    assert spec.registry.model("network", "register").median() > 0


def test_server_cost_per_row_comes_from_the_wide_answers() -> None:
    """A server whose per-row time grows past its caches (0.5 us/row up to 100 rows, 1 us/row at 2,000):
    the fitted slope is the one of answers as large as a load test's, not of the small ones."""
    from mcastlab.sim.calibration import _line

    small, big, wide = 1e-5 + 10 * 0.5e-6, 1e-5 + 100 * 0.5e-6, 1e-5 + 10 * 0.5e-6 + 1990 * 1e-6
    base, item = _line(10, small, 100, big, {"wide_n": 2000}, wide)
    assert item == pytest.approx(1e-6) and base + item * 10 == pytest.approx(small)
    base, item = _line(10, small, 100, big, {}, None)  # files measured without the wide phase
    assert item == pytest.approx(0.5e-6) and base == pytest.approx(1e-5)


def test_pooled_runs_keep_the_wide_phase_size() -> None:
    from mcastlab.calibrate import _merge

    runs = [({"register": [1e-3]}, {"server_s": {"enumerate_wide": t}, "wide_n": 2000, "undelivered": 1})
            for t in (2e-3, 4e-3)]
    _, extras = _merge(runs)
    assert extras["wide_n"] == 2000 and extras["undelivered"] == 2
    assert extras["server_s"]["enumerate_wide"] == pytest.approx(3e-3)
