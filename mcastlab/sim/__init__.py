"""Simulated backends: the embedded ones plus latency models, queueing and faults, in SimPy virtual time.

Build them from data and plug them into a coordinator on a SimPyRuntime::

    import numpy as np, simpy
    from mcastlab import Config, Coordinator
        from mcastlab.sim import make_sim_backends

    reg, msg = make_sim_backends({"faults": [{"target": "messaging", "kind": "outage",
                                              "start": 600, "duration": 30}]},
                                 rng=np.random.default_rng(7))
    rt = SimPyRuntime(simpy.Environment())
    coord = Coordinator(Config(), registry=reg, messaging=msg, runtime=rt, name="sim-1")

The backends bind to the coordinator's runtime when it opens them (``open(runtime)``, like every
backend); several coordinators in one environment may share them.

Everything random comes from ``rng`` (one child stream per model), so the same seed gives the same
frames bit for bit. See :mod:`mcastlab.sim.spec` for the schema and :mod:`mcastlab.sim.fleet` for the
columnar storage of million-identity fleets (driven by the scenario runner's cohort engine,
:mod:`mcastlab.workloads.cohort`). This package holds only the simulated backends and their models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mcastlab.errors import ConfigError
from mcastlab.sim._bind import spawn_generators
from mcastlab.sim.cpu import CpuSpec, SimCpu
from mcastlab.sim.faults import FaultPlan, FaultSpec, parse_fault
from mcastlab.sim.fleet import FleetTable, FleetView
from mcastlab.sim.host import SimHost
from mcastlab.sim.messaging import DeliverySink, SimMessaging
from mcastlab.sim.models import (
    Constant,
    Empirical,
    Exponential,
    LogNormal,
    Sampler,
    fit_lognormal,
    parse_model,
)
from mcastlab.sim.queue import FcfsServer, OpStats
from mcastlab.sim.registry import SimRegistry
from mcastlab.sim.spec import DEFAULT_CALIBRATION, MessagingSpec, RegistrySpec, SimSpec


def make_sim_backends(
    spec: SimSpec | Mapping[str, Any] | None, *, rng: np.random.Generator
) -> tuple[SimRegistry, SimMessaging]:
    """Simulated (registry, messaging) with all randomness drawn from ``rng``; they run in the virtual
    time of the SimPyRuntime they are opened on."""
    if not isinstance(spec, SimSpec):
        spec = SimSpec.from_dict(spec)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    g_reg, g_msg, g_fr, g_fm, g_cpu = spawn_generators(rng, 5)
    reg_faults = FaultPlan([f for f in spec.faults if f.target == "registry"], g_fr)
    msg_faults = FaultPlan([f for f in spec.faults if f.target == "messaging"], g_fm)
    # one coordinator process: both backends' client work queues on its CPU; it shares the calibrated
    # machine's cores with the servers only as calibrated, one of each (scaled out, each has its own)
    one_machine = (spec.cpu.processes == spec.cpu.cores == spec.registry.shards == spec.registry.servers == 1
                   and spec.kafka is None)
    cpu = SimCpu(spec.cpu, g_cpu, on_host=one_machine)
    registry = SimRegistry(spec.registry, rng=g_reg, faults=reg_faults, cpu=cpu)
    if cpu.host is not None:  # the servers share the machine's cores with the coordinator (sim/host.py)
        for shard in registry.shards:
            cpu.host.join(shard, cpu.spec.registry_cpu)
    if spec.kafka is not None:  # Kafka-like: partitioned log, batching, consumer fetch (mcastlab.sim.kafka)
        from mcastlab.sim.kafka import SimKafkaMessaging

        return registry, SimKafkaMessaging(spec.messaging, spec.kafka, rng=g_msg, faults=msg_faults)
    messaging = SimMessaging(spec.messaging, rng=g_msg, faults=msg_faults, cpu=cpu)
    if cpu.host is not None and cpu.spec.messaging_cpu > 0:  # nats-server's CPU, apart from its pipeline
        messaging.burn = (cpu.host, cpu.host.process(), cpu.spec.messaging_cpu)
    return registry, messaging


__all__ = [
    "DEFAULT_CALIBRATION",
    "Constant",
    "CpuSpec",
    "DeliverySink",
    "Empirical",
    "Exponential",
    "FaultPlan",
    "FaultSpec",
    "FcfsServer",
    "FleetTable",
    "FleetView",
    "LogNormal",
    "MessagingSpec",
    "OpStats",
    "RegistrySpec",
    "Sampler",
    "SimCpu",
    "SimHost",
    "SimMessaging",
    "SimRegistry",
    "SimSpec",
    "fit_lognormal",
    "make_sim_backends",
    "parse_fault",
    "parse_model",
    "spawn_generators",
]
