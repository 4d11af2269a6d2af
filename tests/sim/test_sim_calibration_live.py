"""Calibration against real servers: measure live, fit, save, load into sim, compare (mechanics only).

No wall-clock thresholds here (a shared machine makes them flaky): the acceptance figures (sim within
25 % of live) come from ``mcastlab calibrate --validate`` and are reported, not asserted in CI.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from mcastlab.calibrate import OPS, QUICK, calibrate, format_table
from mcastlab.errors import McastlabError
from mcastlab.sim import Empirical, SimSpec

pytestmark = [pytest.mark.live, pytest.mark.slow]


def _have_servers() -> bool:
    try:
        from mcastlab.backends import NatsMessaging, RedisRegistry  # noqa: F401
        from mcastlab.servers import find_binary

        find_binary("redis")
        find_binary("nats")
    except (McastlabError, ImportError):
        return False
    return True


@pytest.mark.skipif(not _have_servers(), reason="needs redis-server, nats-server and the live backends")
def test_calibration_round_trip_live_to_sim(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    data = calibrate(path, validate=True, blocks=2, echo=None, **QUICK)
    assert path.exists()
    assert data["machine"]["servers"].keys() == {"redis", "nats"}
    n = QUICK["n"]
    for label in ("register", "heartbeat", f"enumerate_{n}", f"multicast_publish_{n}", f"multicast_ack_{n}"):
        m = data["measurements"][label]
        assert m["n"] >= QUICK["reps"] // 2 and 0 < m["p50"] <= m["p99"]
        assert m["lognormal"]["median"] > 0
    assert data["server_s_per_op"]["register"] > 0  # Redis' own busy time per register
    wake = data["sim"]["cpu"]["wake_cpu"]  # the extra CPU of a register after each idle gap
    assert len(wake["gaps"]) == len(wake["seconds"]) >= 3 and all(s >= 0 for s in wake["seconds"])
    spec = SimSpec.from_dict({"calibration": str(path)})
    assert isinstance(spec.registry.model("network", "register"), Empirical)
    assert spec.messaging.per_message.median() > 0
    table = pd.DataFrame(data["validation"])
    print(format_table(table))
    assert list(table.op) == list(OPS)
    assert all(
        math.isfinite(v) and v > 0 for v in table[["live_p50", "sim_p50", "live_p99", "sim_p99"]].values.flat
    )
