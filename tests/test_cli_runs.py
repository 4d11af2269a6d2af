"""Runs that never lose data and never overclaim, as a user of the command line sees them: interruption,
outputs that never mix, the memory guard, validate, failed runs, the timeseries and the log."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcastlab.cli import main
from mcastlab.errors import ResourceLimitError, UsageError
from mcastlab.measure.store import new_run_dir
from mcastlab.workloads import guard, load_run, load_scenario, run_scenario
from mcastlab.workloads.runner import RunFailedError

ROOT = Path(__file__).resolve().parents[1]
IOT = str(ROOT / "scenarios/iot-device-management.yaml")
TINY = ["--set", "workload.devices=50", "--set", "duration=120", "--set", "warmup=10", "--no-progress",
        "--no-plots", "--quiet"]


def test_an_existing_out_is_refused_and_force_replaces_it_whole(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", IOT, *TINY, "--out", str(out)]) == 0
    (out / "plots").mkdir()
    (out / "plots" / "old.png").write_bytes(b"stale")
    assert main(["run", IOT, *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and str(out) in err
    assert main(["run", IOT, *TINY, "--out", str(out), "--force"]) == 0
    assert not (out / "plots" / "old.png").exists() and (out / "manifest.json").is_file()


def test_default_run_directories_never_collide(tmp_path: Path) -> None:
    dirs = {new_run_dir(tmp_path, "iot-sim-20261201T120000") for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs)


def test_the_memory_guard_refuses_a_run_that_cannot_fit(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", IOT, "--set", "workload.devices=1000000000", "--set", "config.max_identities=null",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "memory" in err and "--no-guard" in err and "GB" in err
    scn = load_scenario(IOT, {"workload.devices": 1_000_000_000, "config.max_identities": None})
    with pytest.raises(ResourceLimitError) as info:
        guard.check(scn)
    assert info.value.needed > info.value.limit
    assert guard.estimate(scn).identities == 1_000_000_000  # null is allowed, but never unbounded


def test_no_guard_lets_a_refused_run_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "available_bytes", lambda: 1.0)  # pretend the machine is out of memory
    over = {"workload.devices": 30, "duration": 60, "warmup": 0}
    with pytest.raises(ResourceLimitError):
        run_scenario(IOT, overrides=over, progress=False)
    r = run_scenario(IOT, overrides=over, progress=False, guard_memory=False)
    assert len(r.ops) > 30 and r.manifest["memory_estimate"]["identities"] == 30


def test_validate_checks_filters_and_takes_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad-filter.yaml"
    bad.write_text("pattern: multicast-registry\nslots: {registry: memory, messaging: memory}\n"
                   "workload: {kind: loadtest, filter: 'status == \"online\" and'}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "workload.filter" in err and "position" in err and "^" in err
    assert main(["validate", IOT, "--set", 'workload.latest_firmware="1..x"']) == 2
    assert "workload.latest_firmware" in capsys.readouterr().err
    assert main(["validate", IOT, "--set", "workload.devices=100", "--set", "duration=600"]) == 0
    assert "600 s" in capsys.readouterr().out
    assert main(["validate", IOT, "--set", "sim.calibration=no/such/file.json"]) == 2
    assert "calibration" in capsys.readouterr().err


def test_sigterm_stops_the_run_keeps_its_frames_and_exits_143(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcastlab.cli", "run", IOT, "--set", "workload.devices=3000", "--set",
         "duration=20000", "--out", str(out), "--no-progress", "--no-plots"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    time.sleep(3.0)  # well into the run (setting up 3,000 sensors takes ~1 s)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=max(5.0, deadline - time.monotonic()))
    assert proc.returncode == 143, stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["interrupted"] is True and m["signal"] == "SIGTERM" and m["exit_code"] == 143
    assert "INTERRUPTED by SIGTERM" in stdout and "interrupted by SIGTERM" in stderr
    run = load_run(out)
    assert len(run.ops) > 1000 and 0 < m["end_s"] < 20000


def test_an_unexpected_error_keeps_what_was_measured_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mcastlab.measure.recorder import Recorder

    real = Recorder.sample
    calls = {"n": 0}

    def broken(self: Recorder, t: float, registered: int, alive: int) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise ZeroDivisionError("a bug in the middle of a run")
        real(self, t, registered, alive)

    monkeypatch.setattr(Recorder, "sample", broken)
    out = tmp_path / "run"
    assert main(["run", IOT, *TINY, "--out", str(out)]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    assert m["error"]["type"] == "ZeroDivisionError" and "Traceback" in m["error"]["traceback"]
    assert len(load_run(out).ops) > 0
    monkeypatch.setattr(Recorder, "sample", broken)
    calls["n"] = 0
    with pytest.raises(RunFailedError) as info:
        run_scenario(IOT, overrides={"workload.devices": 50, "duration": 120, "warmup": 10}, progress=False)
    assert len(info.value.result.ops) > 0


def test_the_run_has_a_timeseries_with_offered_and_achieved_rates(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", IOT, *TINY[:-1], "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "offered/s" in text and "achieved/s" in text and "resources busy" in text
    ts = load_run(out).timeseries
    assert (out / "timeseries.parquet").is_file() and set(ts["op"]) >= {"register", "heartbeat"}
    assert ts["t"].max() < 120 + 5 + 1 and (ts["window"] == 1.0).all()
    hb = ts[ts["op"] == "heartbeat"]
    assert hb["offered_rate"].sum() == pytest.approx(hb["achieved_rate"].sum(), rel=0.05)
    assert ((ts["p99_s"].notna()) <= (ts["n"] >= 100)).all()  # no p99 on fewer than 100 samples


def test_a_run_shorter_than_its_deaths_window_warns(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    assert main(["run", IOT, "--set", "workload.devices=300", "--set", "duration=200", "--set", "warmup=10",
                 "--out", str(tmp_path / "r"), "--no-progress", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "planned deaths were not injected" in out and "could not expire before the run ended" in out


def test_verbose_shows_swallowed_exceptions_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """The sweeper survives a failing backend; what it swallowed is logged with its traceback."""
    import asyncio

    from mcastlab import Config, Coordinator
    from mcastlab.backends import MemoryRegistry
    from mcastlab.errors import BackendUnavailableError

    class Failing(MemoryRegistry):
        async def claim_expired(self, *, now: float, limit: int) -> list:  # type: ignore[override]
            raise BackendUnavailableError("registry gone")

    async def body() -> int:
        async with Coordinator(Config(sweep_interval=0.01, sweep_resolution=0.001),
                               registry=Failing()) as c:
            for _ in range(200):
                if c.sweep_errors:
                    break
                await asyncio.sleep(0.005)
            return c.sweep_errors

    with caplog.at_level(logging.WARNING, logger="mcastlab"):
        assert asyncio.run(body()) >= 1
    rec = next(r for r in caplog.records if r.name == "mcastlab.sweeper")
    assert rec.exc_info is not None and "registry gone" in str(rec.exc_info[1])


def test_verbose_flag_routes_the_log_to_stderr() -> None:
    res = subprocess.run([sys.executable, "-m", "mcastlab.cli", "-v", "validate", IOT], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env={**os.environ})
    assert res.returncode == 0
    assert logging.getLogger("mcastlab").level in (logging.NOTSET, logging.WARNING, logging.ERROR)


def test_prepare_out_refuses_a_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        run_scenario(IOT, overrides={"workload.devices": 10, "duration": 30, "warmup": 0}, out=f,
                     progress=False)
