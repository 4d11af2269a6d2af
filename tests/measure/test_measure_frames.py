"""Recorder -> tidy frames: documented columns and dtypes, receipts joined, audit, makespan, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mcastlab.measure import FRAMES, SCHEMAS, Recorder, RunResult, load_run, save_run
from mcastlab.measure.frames import build, empty
from mcastlab.results import MulticastResult
from mcastlab.workloads.truth import Audit

NAMES = ["dev-0", "dev-1", "dev-2", "dev-3"]


def _recorder() -> Recorder:
    rec = Recorder()
    rec.op("register", "boot", 0, 0.0, 0.0, 0.002, True)
    rec.op("heartbeat", "heartbeat", 1, 1.0, 1.5, 1.6, False, "UnknownIdentityError")
    rec.op("enumerate", "dashboard", -1, 2.0, 2.0, 2.01, True, matched=3)
    # a multicast scheduled at 10.0, called at 10.1 (generator lag 0.1), to dev-0, dev-1, dev-2
    res = MulticastResult(
        "m-1",
        "publish",
        3,
        2,
        1,
        {"dev-0": "delivered", "dev-1": "delivered", "dev-2": "timeout"},
        {"dev-0": 0.05, "dev-1": 0.07, "dev-2": 0.5},
        started_at=110.1,
        duration_s=0.5,
        enumerate_s=0.01,
    )
    audit = Audit(expected=4, stale=0, wrong=0, uncertain=0, expected_codes=np.array([0, 1, 2, 3], np.int32))
    idx = rec.multicast(
        res,
        stream="push",
        filter_text='status == "online"',
        t_start=10.0,
        origin=100.0,
        ident_of={n: i for i, n in enumerate(NAMES)},
        audit=audit,
    )
    rec.op("multicast", "push", -1, 10.0, 10.1, 10.6, True, matched=3, delivered=2, failed=1, msg=idx)
    rec.agents.update({0, 1})
    rec.receipt("m-1", 0, 10.2)
    rec.receipt("m-1", 0, 10.3)  # a duplicate
    # dev-1 has an agent but nothing arrived: it counts as missed even though the sender said delivered
    rec.expiration("dev-3", 20.0, 20.5, "coord-0")
    rec.gone(3, 20.0, 20.1)
    rec.sample(0.0, 0, 0)
    rec.sample(10.0, 4, 4)
    return rec


def _frames() -> dict[str, pd.DataFrame]:
    return build(_recorder(), NAMES, run="r1", scenario="s", mode="sim", backend="memory", warmup=1.0)


def test_every_frame_has_documented_columns_and_dtypes() -> None:
    frames = _frames()
    for name in ("ops", "deliveries", "expirations", "population", "multicasts"):
        assert list(frames[name].columns) == list(SCHEMAS[name])
        for col, dtype in SCHEMAS[name].items():
            assert str(frames[name][col].dtype) == dtype, (name, col)
    for name in FRAMES:
        e = empty(name)
        assert list(e.columns) == list(SCHEMAS[name]) and len(e) == 0


def test_ops_latency_runs_from_the_scheduled_start() -> None:
    ops = _frames()["ops"]
    m = ops[ops["op"] == "multicast"].iloc[0]
    assert m["latency_s"] == pytest.approx(0.6) and m["lag_s"] == pytest.approx(0.1)
    assert m["service_s"] == pytest.approx(0.5) and m["message_id"] == "m-1"
    hb = ops[ops["op"] == "heartbeat"].iloc[0]
    assert not hb["ok"] and hb["error"] == "UnknownIdentityError" and hb["identity"] == "dev-1"
    assert ops["warmup"].tolist() == [True, False, False, False]
    assert pd.isna(ops.loc[ops["op"] == "enumerate", "identity"].iloc[0])


def test_deliveries_join_receipts() -> None:
    d = _frames()["deliveries"].set_index("identity")
    assert d.loc["dev-0", "observed"] and d.loc["dev-0", "receipts"] == 2
    assert d.loc["dev-0", "t_received"] == pytest.approx(10.2)  # the first receipt
    assert d.loc["dev-0", "latency_s"] == pytest.approx(0.2)  # from the scheduled start
    assert not d.loc["dev-1", "observed"] and d.loc["dev-1", "t_received"] == pytest.approx(10.17)
    assert d.loc["dev-2", "status"] == "timeout" and np.isnan(d.loc["dev-2", "t_received"])


def test_multicast_audit_and_makespan() -> None:
    mc = _frames()["multicasts"].iloc[0]
    assert (mc["targeted"], mc["delivered"], mc["failed"]) == (3, 2, 1)
    assert mc["duplicated"] == 1 and mc["received"] == 1
    assert mc["missed"] == 3  # dev-1 (agent, nothing received), dev-2 (timeout), dev-3 (not targeted)
    assert mc["makespan_s"] == pytest.approx(0.2)  # dev-0's first receipt; dev-1 completed at 0.17


def test_expirations_carry_both_lags() -> None:
    ex = _frames()["expirations"].iloc[0]
    assert ex["lag_s"] == pytest.approx(0.5) and ex["gone_lag_s"] == pytest.approx(0.1)
    assert ex["coordinator"] == "coord-0"


def test_save_and_load_keep_dtypes(tmp_path: Path) -> None:
    frames = _frames()
    from mcastlab.measure import evaluate
    from mcastlab.measure.targets import SPEC_TARGETS

    frames["targets"] = evaluate(list(SPEC_TARGETS), frames, run="r1")
    run = RunResult(frames, {"run": "r1", "warmup": 1.0})
    save_run(run, tmp_path / "run")
    back = load_run(tmp_path / "run")
    for name in FRAMES:
        pd.testing.assert_frame_equal(back.frames[name], frames[name])
    assert back.manifest["run"] == "r1" and back.out_dir == tmp_path / "run"


def test_load_run_refuses_a_non_run(tmp_path: Path) -> None:
    from mcastlab.errors import UsageError

    with pytest.raises(UsageError, match="not a run directory"):
        load_run(tmp_path)
