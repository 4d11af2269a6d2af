"""Live runs on coordinator replicas in Dask worker processes, against Redis + NATS started by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mcastlab.errors import ScenarioError, UsageError
from mcastlab.workloads import load_run, run_scenario

from .wl_helpers import LIVE_SMALL, SCENARIOS, check_columns, check_invariants

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def iot_x2(urls: dict[str, str]) -> Any:
    """The small live IoT scenario (deaths, firmware pushes, restarts) on two replica processes."""
    over = {**LIVE_SMALL["iot-device-management"], "slots.registry.url": urls["redis"],
            "slots.messaging.servers": urls["nats"]}
    return run_scenario(SCENARIOS / "iot-device-management.yaml", mode="live", overrides=over,
                        progress=False, processes=2)


def test_two_replicas_share_the_work_in_two_processes(iot_x2: Any) -> None:
    check_columns(iot_x2.frames)
    procs = iot_x2.manifest["processes"]
    assert [p["process"] for p in procs] == [0, 1]
    assert len({p["pid"] for p in procs}) == 2 and os.getpid() not in {p["pid"] for p in procs}
    ops = iot_x2.ops
    assert sorted(ops["process"].unique()) == [0, 1]
    assert ops["ok"].mean() > 0.95, ops[~ops["ok"]]["error"].value_counts()
    ident = ops.dropna(subset=["identity"])
    assert (ident.groupby("identity")["process"].nunique() == 1).all()  # one owner per identity
    busy = iot_x2.manifest["resources"]["busy"]
    assert {"coordinator-0", "coordinator-1"} <= set(busy)


def test_the_merged_truth_audits_and_expires_the_whole_fleet(iot_x2: Any) -> None:
    check_invariants(iot_x2)  # no stale / wrong recipient; every expected expiry reported exactly once
    mc = iot_x2.multicasts
    assert int(mc["expected"].sum()) > 0
    assert int(mc["missed"].sum()) <= 0.02 * int(mc["expected"].sum())
    assert iot_x2.manifest["counts"]["expected_expirations"] > 0


def test_multicast_reactions_reach_the_owning_replica(iot_x2: Any) -> None:
    ops = iot_x2.ops
    reactions = ops[ops["stream"].isin(["firmware-install", "restart"])]
    senders = set(iot_x2.multicasts["process"])
    assert len(reactions) > 0 and reactions["process"].nunique() == 2 and len(senders) >= 1


def test_processes_are_refused_in_sim_mode() -> None:
    with pytest.raises(ScenarioError, match="sim.cpu.processes"):
        run_scenario(SCENARIOS / "prism-loadtest.yaml", mode="sim", processes=2, progress=False)
    with pytest.raises(UsageError, match="--processes"):
        run_scenario(SCENARIOS / "prism-loadtest.yaml", mode="live", processes=0, progress=False)


def test_a_remote_scheduler_needs_server_addresses_in_the_scenario() -> None:
    with pytest.raises(ScenarioError, match="address"):
        run_scenario(SCENARIOS / "prism-loadtest.yaml", mode="live", processes=2,
                     scheduler="tcp://127.0.0.1:1", progress=False)


def test_replicas_on_a_running_dask_cluster(urls: dict[str, str]) -> None:
    """--scheduler: the replicas run on a cluster started elsewhere (here: two worker processes)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1",
                      scheduler_kwargs={"dashboard_address": ":0"}) as lc:
        run = run_scenario(SCENARIOS / "prism-loadtest.yaml", mode="live", progress=False,
                           scheduler=lc.scheduler_address, processes=2,
                           overrides={"duration": 4, "drain": 1, "slots.registry.url": urls["redis"],
                                      "slots.messaging.servers": urls["nats"]})
    assert run.manifest["resources"]["cluster"]["scheduler"] == lc.scheduler_address
    assert sorted(run.ops["process"].unique()) == [0, 1]
    check_invariants(run)


def test_sigint_stops_every_replica_and_keeps_their_frames(tmp_path: Path, urls: dict[str, str]) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mcastlab.cli", "run", str(SCENARIOS / "prism-loadtest.yaml"),
           "--processes", "2", "--out", str(out), "--no-plots", "--no-progress", "--quiet",
           "--set", "duration=60",
           "--set", f"slots.registry.url={urls['redis']}", "--set", f"slots.messaging.servers={urls['nats']}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(12)  # the cluster starts (a few s), then the run
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err[-2000:]
    run = load_run(out)
    assert run.manifest["interrupted"] and run.manifest["signal"] == "SIGINT"
    assert sorted(run.ops["process"].unique()) == [0, 1]
    assert run.ops["t_start"].max() < 55  # stopped early
