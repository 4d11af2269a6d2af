"""The machine's cores shared by the simulated processes (mcastlab.sim.host): the stretch of work that
starts while others run, no effect when cores are plenty, and the calibration's host measurements."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from mcastlab.calibrate_host import process_cpu_s
from mcastlab.errors import ConfigError, RuntimeMisuseError, UnsupportedError
from mcastlab.measure.resources import usable_cpus as host_cores
from mcastlab.sim import CpuSpec, SimCpu, SimHost
from mcastlab.sim.calibration import _host
from mcastlab.sim.queue import FcfsServer
from mcastlab.workloads import run_scenario


def test_work_starting_while_another_process_runs_shares_the_core() -> None:
    host = SimHost(1)
    a, b = FcfsServer(1), FcfsServer(1)
    host.join(a)
    host.join(b)
    assert host.admit(b, 0.0, 10.0) == (0.0, 10.0)  # alone on the core
    assert host.admit(a, 1.0, 2.0) == (1.0, 4.0)  # two processes want the one core: half speed
    assert host.waited == pytest.approx(2.0)
    assert a.busy == 2.0 and b.busy == 10.0 and host.cpu_s() == 12.0  # busy counts CPU, not the wait
    assert host.admit(a, 20.0, 2.0) == (20.0, 2.0)  # b is done by then


def test_enough_cores_and_work_queued_later_do_not_stretch() -> None:
    host = SimHost(2)
    a, b, c = FcfsServer(1), FcfsServer(1), FcfsServer(1)
    for s in (a, b, c):
        host.join(s)
    host.admit(b, 0.0, 10.0)
    assert host.admit(a, 1.0, 2.0) == (1.0, 2.0)  # a core each
    host.admit(c, 0.0, 10.0)
    assert host.admit(a, 5.0, 2.0) == (5.0, 3.0)  # three want two cores
    assert host.stretch(50.0) == 1.0


def test_a_member_burning_more_than_a_core_counts_as_such_and_pools_are_refused() -> None:
    host = SimHost(2)
    heavy = FcfsServer(1)
    host.join(heavy, 2.0)
    host.admit(heavy, 0.0, 10.0)
    assert host.stretch(1.0) == pytest.approx(1.5)  # 2 cores + the new work's 1
    with pytest.raises(UnsupportedError):
        host.join(FcfsServer(3))
    with pytest.raises(RuntimeMisuseError):
        host.admit(FcfsServer(1), 0.0, 1.0)  # never joined
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError):
            SimHost(bad)  # type: ignore[arg-type]


def test_work_queued_for_later_does_not_make_a_member_busy_now() -> None:
    host = SimHost(1)
    a, b = host.process(), host.process()
    host.admit(a, 10.0, 0.001)  # a's work starts at t = 10
    assert host.admit(b, 0.0, 1.0) == (0.0, 1.0)  # a is idle until then: no sharing
    assert host.admit(b, 9.9995, 1.0) == (9.9995, 1.0)  # it starts before a's work
    assert host.stretch(10.0005) == 3.0  # new work + a + b, all inside their work, on one core


def test_the_coordinator_cpu_on_a_host() -> None:
    cpu = SimCpu(CpuSpec.from_dict({"host_cores": 1}))
    assert cpu.host is not None
    other = cpu.host.process()
    cpu.host.admit(other, 0.0, 1.0)
    assert cpu.charge(0.5, 0.1) == pytest.approx(0.5 + 0.2)
    assert cpu.server.busy == pytest.approx(0.1)


def test_host_keys_are_validated() -> None:
    for bad in ({"host_cores": 0}, {"host_cores": 1.5}, {"host_cores": True}, {"registry_cpu": -1},
                {"messaging_cpu": "x"}, {"host_core": 2}):
        with pytest.raises(ConfigError):
            CpuSpec.from_dict(bad)
    spec = CpuSpec.from_dict({"host_cores": 2, "registry_cpu": 1.2, "messaging_cpu": 1e-6})
    assert CpuSpec.from_dict(spec.to_dict()) == spec
    assert "host_cores" not in CpuSpec().to_dict()  # no host: each process has its own cores, as before


def _load_test(rate: float, cal: dict[str, object]) -> tuple[np.ndarray, dict[str, float]]:
    run = run_scenario("scenarios/prism-loadtest.yaml", mode="sim", progress=False, overrides={
        "workload.rate.rate": rate, "duration": 10, "warmup": 1, "drain": 2, "seed": 7,
        **{f"sim.cpu.{k}": v for k, v in cal.items()}})
    return run.ops["latency_s"].to_numpy(), run.manifest["resources"]["busy"]


def test_plenty_of_cores_changes_nothing_and_two_cores_slow_a_loaded_run() -> None:
    base, busy = _load_test(400, {"host_cores": None})  # the shipped calibration has a host: none here
    plenty, busy_plenty = _load_test(400, {"host_cores": 64, "messaging_cpu": 1e-6})
    assert np.array_equal(base, plenty)
    assert "host-cores" not in busy and busy_plenty["host-cores"] > 0
    _, busy_two = _load_test(400, {"host_cores": 2, "messaging_cpu": 1e-6})
    assert busy_two["host-cores"] == pytest.approx(busy_plenty["host-cores"] * 32, rel=0.05)
    loaded = _load_test(600, {"host_cores": None})[0]  # where the three want more than two cores at times
    two = _load_test(600, {"host_cores": 2, "messaging_cpu": 1e-6})[0]
    one = _load_test(600, {"host_cores": 1, "messaging_cpu": 1e-6})[0]
    assert np.percentile(loaded, 99) < np.percentile(two, 99) < np.percentile(one, 99)


def test_calibration_turns_server_measurements_into_host_keys() -> None:
    got = _host({"host_cores": 2, "redis_cpu_s": 2.3, "redis_cmd_s": 2.0, "nats_cpu_per_msg": 1.1e-6})
    assert got == {"host_cores": 2, "registry_cpu": pytest.approx(1.15), "messaging_cpu": 1.1e-6}
    assert _host(None) == {} and _host({}) == {}  # files measured before the host model: no host


def test_process_cpu_counts_this_process_work() -> None:
    before = process_cpu_s(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    assert process_cpu_s(os.getpid()) - before >= 0.04
    assert 1 <= host_cores() <= (os.cpu_count() or 1)


def test_a_scaled_out_simulation_has_no_shared_host() -> None:
    from mcastlab.sim import SimSpec, make_sim_backends

    cal = {"cpu": {"host_cores": 2, "messaging_cpu": 1e-6}}
    reg, msg = make_sim_backends(SimSpec.from_dict(cal), rng=np.random.default_rng(0))
    assert reg.cpu is not None and reg.cpu.host is not None and msg.burn is not None
    for scaled in ({"registry": {"shards": 3}}, {"cpu": {**cal["cpu"], "processes": 2}}):
        reg, msg = make_sim_backends(SimSpec.from_dict({**cal, **scaled}), rng=np.random.default_rng(0))
        assert reg.cpu is not None and reg.cpu.host is None and msg.burn is None


def test_commands_run_only_inside_scripts_are_not_counted_twice() -> None:
    """Redis counts a script's nested commands in their own commandstats entries and in EVALSHA's time;
    the calibration's busy time leaves out the ones the registry never sends itself."""
    from mcastlab.calibrate_host import ONLY_IN_SCRIPTS, SENT_DIRECTLY

    assert {"hset", "sadd", "zadd", "pexpire", "sinterstore", "sunionstore", "hdel"} <= ONLY_IN_SCRIPTS
    assert not ONLY_IN_SCRIPTS & SENT_DIRECTLY and "evalsha" not in ONLY_IN_SCRIPTS
    assert "hvals" not in ONLY_IN_SCRIPTS  # what enumerates send
