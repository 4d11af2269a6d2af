"""Every shipped scenario in sim mode at reduced scale: invariants, columns, determinism, Ctrl-C."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mcastlab.workloads import load_run, load_scenario, run_scenario

from .wl_helpers import SCENARIOS, SIM_SMALL, check_columns, check_invariants

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=sorted(SIM_SMALL))
def sim_run(request: pytest.FixtureRequest):
    name = request.param
    return run_scenario(SCENARIOS / f"{name}.yaml", mode="sim", overrides=SIM_SMALL[name], progress=False)


def test_frames_have_documented_columns_and_dtypes(sim_run) -> None:
    check_columns(sim_run.frames)
    assert len(sim_run.ops) > 0 and len(sim_run.population) > 0


def test_invariants(sim_run) -> None:
    check_invariants(sim_run)
    mc = sim_run.multicasts
    assert int(mc["missed"].sum()) == 0  # zero-loss simulated messaging: everyone alive and matching got it
    assert int(mc["duplicated"].sum()) == 0
    # the generator is late only by what the calibrated CPU model charges it (timer wake-ups, queueing
    # behind the coordinator's own work): never early, and in these light scenarios a millisecond or so
    lag = sim_run.ops["lag_s"]
    assert (lag >= 0).all() and lag.median() < 0.005
    assert not sim_run.manifest["interrupted"]


def test_deaths_expire_exactly_once(sim_run) -> None:
    deaths = sim_run.truth["deaths"]
    ex = sim_run.expirations
    if sim_run.manifest["scenario"] in ("iot-device-management", "iot-failures"):
        assert len(deaths) > 0
        assert len(ex) == len(deaths)  # nothing else expires in these scenarios
    due = {name for name, _ in sim_run.truth["expected_expirations"]} & set(deaths)
    for name in due:  # every death whose deadline passed during the run
        assert (ex["identity"] == name).sum() == 1, name
    assert (ex["lag_s"] >= 0).all()


def test_summary_excludes_warmup(sim_run) -> None:
    s = sim_run.summary()
    ops = sim_run.ops
    kept = ops[(ops["t_start"] >= sim_run.warmup) & ops["ok"]]
    for op, n in kept.groupby("op", observed=True).size().items():
        assert int(s.loc[op, "count"]) == n
    assert {"p50", "p90", "p99", "p99.9", "max"} <= set(s.columns)


def test_targets_table_has_spec_targets(sim_run) -> None:
    t = sim_run.targets
    assert t["metric"].str.contains("SlowEnumerateLatency").any()
    assert t["metric"].str.contains("HighTTLExpirationRate").any()
    assert t["passed"].dtype == "boolean"


def test_same_seed_same_frames() -> None:
    over = {**SIM_SMALL["iot-device-management"], "workload.devices": 120, "duration": 400}
    a = run_scenario(SCENARIOS / "iot-device-management.yaml", overrides=over, progress=False)
    b = run_scenario(SCENARIOS / "iot-device-management.yaml", overrides=over, progress=False)
    for name in ("ops", "deliveries", "expirations", "population", "multicasts", "targets"):
        pd.testing.assert_frame_equal(a.frames[name].drop(columns="run"), b.frames[name].drop(columns="run"))
    c = run_scenario(SCENARIOS / "iot-device-management.yaml", overrides={**over, "seed": 43}, progress=False)
    assert not a.ops["t_start"].equals(c.ops["t_start"])


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "KeyboardInterrupt"])
def test_an_interrupted_run_keeps_what_was_measured(how: str, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Any) -> None:
    """A real signal (or a KeyboardInterrupt from elsewhere) a third of the way in: the run stops
    cleanly, keeps and saves every frame measured so far and says which signal stopped it."""
    import os
    import signal

    import simpy

    calls = {"n": 0}
    real_run = simpy.Environment.run

    def run(self: simpy.Environment, until: float | None = None) -> None:
        calls["n"] += 1
        if calls["n"] == 60:
            if how == "KeyboardInterrupt":
                raise KeyboardInterrupt
            os.kill(os.getpid(), getattr(signal, how))
        real_run(self, until)

    monkeypatch.setattr(simpy.Environment, "run", run)
    r = run_scenario(SCENARIOS / "iot-device-management.yaml", overrides=SIM_SMALL["iot-device-management"],
                     progress=False, out=tmp_path / "run")
    assert r.manifest["interrupted"] is True
    assert r.manifest["signal"] == ("SIGINT" if how == "KeyboardInterrupt" else how)
    assert r.manifest["exit_code"] == (143 if how == "SIGTERM" else 130)
    assert 0 < r.ops["t_start"].max() < 520 * 0.5 and len(r.ops) > 100
    check_columns(r.frames)
    saved = load_run(tmp_path / "run")
    assert saved.manifest["interrupted"] is True and len(saved.ops) == len(r.ops)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are restored


def test_faults_make_a_storm_and_an_avalanche() -> None:
    over = SIM_SMALL["iot-failures"]
    r = run_scenario(SCENARIOS / "iot-failures.yaml", overrides=over, progress=False)
    ops = r.ops
    storm = ops[(ops["stream"] == "reconnect") & (ops["op"] == "register")]
    assert len(storm) > 200 and storm["t_start"].between(145, 150.01).all()  # outage 100..145, spread 5 s
    boots = ops[ops["stream"] == "synchronised-boot"]
    assert (
        boots["t_start"].nunique() == 1 and 0.25 * 300 < len(boots) <= 0.34 * 300
    )  # a third of those online
    ex = r.expirations
    assert len(ex) == len(boots)  # all of them died together...
    assert ex["deadline"].nunique() == 1  # ...and their TTLs expired in the same instant: the avalanche


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    scn = load_scenario(SCENARIOS / "prism-loadtest.yaml", {"duration": 2, "mode": "sim"})
    run_scenario(scn, progress=True)
    assert "prism-loadtest [sim]" in capsys.readouterr().err


def test_durability_slot_persists_every_multicast(tmp_path) -> None:
    import asyncio

    from mcastlab.backends import SqliteDurability

    db = tmp_path / "journal.db"
    over = {**SIM_SMALL["iot-device-management"], "duration": 200,
            "slots.durability": {"backend": "sqlite", "path": str(db), "prefix": "j"}}
    run = run_scenario(SCENARIOS / "iot-device-management.yaml", mode="sim", overrides=over, progress=False)
    journal = SqliteDurability(str(db), prefix="j")

    async def stored() -> list[dict]:
        await journal.open()
        try:
            return await journal.messages()
        finally:
            await journal.close()

    rows = asyncio.run(stored())
    assert len(rows) == len(run.multicasts) > 0
    assert {r["message_id"] for r in rows} == set(run.multicasts["message_id"])


def test_postgres_durability_is_refused_in_sim_mode_with_a_fix() -> None:
    from mcastlab.errors import ScenarioError

    over = {**SIM_SMALL["iot-device-management"], "slots.durability": "postgres"}
    with pytest.raises(ScenarioError, match=r"slots\.durability.*needs live mode.*Fix"):
        run_scenario(SCENARIOS / "iot-device-management.yaml", mode="sim", overrides=over, progress=False)
