"""Workloads and the scenario runner: IoT fleets, presence, service discovery and load tests.

Notebook use::

    from mcastlab.workloads import load_scenario, run_scenario
    scn = load_scenario("scenarios/iot-device-management.yaml", {"workload.devices": 1000})
    run = run_scenario(scn)            # sim mode by default; mode="live" for real servers
    run.summary(); run.targets; run.ops.groupby("op").latency_s.describe()
"""

from mcastlab.measure.store import RunResult, compare_runs, load_run
from mcastlab.workloads.kinds import KINDS
from mcastlab.workloads.runner import run_scenario
from mcastlab.workloads.scenario import Scenario, load_scenario, parse_overrides

__all__ = [
    "KINDS",
    "RunResult",
    "Scenario",
    "compare_runs",
    "load_run",
    "load_scenario",
    "parse_overrides",
    "run_scenario",
]
