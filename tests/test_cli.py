"""The mcastlab command: run, report, compare, validate, and delegation to servers/calibrate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcastlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--set",
    "workload.devices=200",
    "--set",
    "duration=400",
    "--set",
    "warmup=30",
    "--set",
    "workload.deaths={fraction: 0.05, start: 30, end: 60}",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "iot"
    assert (
        main(
            [
                "run",
                str(ROOT / "scenarios/iot-device-management.yaml"),
                *SMALL,
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return out


def test_run_writes_frames_manifest_and_plots(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ops", "deliveries", "expirations", "population", "targets", "multicasts"):
        assert (run_dir / f"{name}.parquet").is_file()
    m = json.loads((run_dir / "manifest.json").read_text())
    assert {
        "scenario",
        "seed",
        "mode",
        "backend_versions",
        "mcastlab_version",
        "git_revision",
        "machine",
    } <= set(m)
    assert m["mode"] == "sim" and m["seed"] == 42 and m["counts"]["deaths"] == 10
    assert len(list((run_dir / "plots").glob("*.png"))) == 6  # incl. the timeseries with fault windows


def test_report_prints_the_targets_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "SlowEnumerateLatency" in out and "threshold" in out and "achieved" in out
    assert "targeting audit" in out and "PASS" in out


def test_compare_two_runs(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "seed7"
    assert (
        main(
            [
                "run",
                str(ROOT / "scenarios/iot-device-management.yaml"),
                *SMALL,
                "--set",
                "seed=7",
                "--out",
                str(other),
                "--no-progress",
                "--no-plots",
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["compare", str(run_dir), str(other), "--plot", str(tmp_path / "overlay.png")]) == 0
    out = capsys.readouterr().out
    # N-run compare: the two runs are named by what differs (the seed), latencies carry units
    assert "named by what differs between them: seed" in out and "[1] seed=42" in out and "[2] seed=7" in out
    assert "enumerate" in out and " ms" in out and (tmp_path / "overlay.png").is_file()


def test_bad_scenario_exits_2_naming_file_key_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "pattern: multicast-registry\nslots: {registry: memory, messaging: memory}\n"
        "workload: {kind: loadtest, rate: -3}\n"
    )
    assert main(["run", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "workload.rate.rate" in err and "Fix:" in err
    assert main(["run", str(ROOT / "scenarios/iot-device-management.yaml"), "--set", "nope"]) == 2


def test_validate_all_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    paths = sorted(str(p) for p in (ROOT / "scenarios").glob("*.yaml"))
    assert main(["validate", *paths]) == 0
    assert capsys.readouterr().out.count(": ok") == len(paths)


def test_check_flag_fails_on_a_failed_target(tmp_path: Path) -> None:
    code = main(
        [
            "run",
            str(ROOT / "scenarios/prism-loadtest.yaml"),
            "--mode",
            "sim",
            "--set",
            "duration=3",
            "--set",
            "targets=[{metric: latency, op: register, stat: max, below: 0.0}]",
            "--out",
            str(tmp_path / "p"),
            "--no-progress",
            "--no-plots",
            "--quiet",
            "--check",
        ]
    )
    assert code == 1


def test_servers_and_calibrate_are_delegated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["servers", "--help"]) == 0
    assert "up" in capsys.readouterr().out
    code = main(["calibrate", "--help"])
    assert code in (0, 2)


def test_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("mcastlab")
    res = subprocess.run(
        [str(exe), "validate", str(ROOT / "scenarios/prism-loadtest.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and "ok" in res.stdout


def test_unreadable_inputs_and_outputs_exit_2_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert main(["validate", str(binary)]) == 2
    assert main(["run", str(tmp_path), "--no-progress"]) == 2
    blocked = tmp_path / "file"
    blocked.write_text("x")  # --out under a regular file cannot be created
    assert main(["run", str(ROOT / "scenarios/iot-device-management.yaml"), "--no-progress",
                 "--out", str(blocked / "run")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{bad")
    assert main(["report", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    for needle in ("cannot be read as a YAML text file", "cannot write the run", "not JSON"):
        assert needle in err
