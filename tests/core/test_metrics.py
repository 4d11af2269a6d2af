"""Prometheus metrics: the spec's names, per-coordinator registries, shared registries with labels."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mcastlab import Config, Coordinator, Metrics
from mcastlab.errors import ConfigError, InvalidIdentityError
from mcastlab.runtime import SimPyRuntime

SPEC_NAMES = (
    "multicast_registry_registered_identities",
    "multicast_registry_multicast_delivered_total",
    "multicast_registry_enumerate_latency_seconds",
    "multicast_registry_ttl_expiration_total",
    "multicast_registry_delivery_failures_total",
)


def test_metric_values_follow_operations(sim: SimPyRuntime) -> None:
    async def body() -> Coordinator:
        async with Coordinator(runtime=sim) as c:
            for i in range(5):
                await c.register(f"d{i}", {"n": i}, ttl=10 if i < 2 else 100)
            await c.register("d0", {"n": 0}, ttl=10)  # upsert: not a new identity
            await c.enumerate({"n": 1})
            await c.enumerate()
            async with c.inbox("d3"):
                await c.multicast(None, b"x", mode="ack")
            await sim.sleep(50)
            await c.unregister("d4")
            return c

    c = sim.run(body())
    m = c.metrics
    assert m.value("multicast_registry_registered_identities") == 2
    assert m.value("multicast_registry_enumerate_latency_seconds_count") == 2
    assert m.value("multicast_registry_multicast_delivered_total_sum") == 1
    assert m.value("multicast_registry_ttl_expiration_total") == 2
    assert m.value("multicast_registry_delivery_failures_total", status="no_listener") == 4
    text = m.exposition().decode()
    for name in SPEC_NAMES:
        assert name in text


def test_two_coordinators_never_collide() -> None:
    a, b = Coordinator(), Coordinator()
    assert a.metrics.registry is not b.metrics.registry


def test_shared_registry_needs_distinct_labels() -> None:
    reg = CollectorRegistry()
    Coordinator(metrics=reg)
    with pytest.raises(ConfigError, match="distinct label values"):
        Coordinator(metrics=reg)
    shared = CollectorRegistry()
    a = Metrics(shared, labels={"coordinator": "a"})
    b = Metrics(shared, labels={"coordinator": "b"})
    with pytest.raises(ConfigError, match="same label names"):
        Metrics(shared, labels={"host": "x"})
    a.expirations.inc(2)
    b.expirations.inc(3)
    assert a.value("multicast_registry_ttl_expiration_total") == 2
    assert b.value("multicast_registry_ttl_expiration_total") == 3
    text = a.exposition().decode()
    assert 'coordinator="a"' in text and 'coordinator="b"' in text


def test_failed_operations_are_counted(sim: SimPyRuntime) -> None:
    async def body() -> Any:
        async with Coordinator(Config(), runtime=sim) as c:
            with pytest.raises(InvalidIdentityError):
                await c.register("", {})
            return c.metrics.value("multicast_registry_operation_errors_total", op="register",
                                   kind="InvalidIdentityError")

    assert sim.run(body()) == 1


def test_registered_gauge_is_the_shared_registrys_count(sim: SimPyRuntime) -> None:
    from mcastlab.backends import MemoryMessaging, MemoryRegistry

    reg, msg = MemoryRegistry(), MemoryMessaging()

    async def body() -> tuple[float, float]:
        async with Coordinator(runtime=sim, registry=reg, messaging=msg) as a, \
                Coordinator(runtime=sim, registry=reg, messaging=msg) as b:
            for i in range(6):
                await a.register(f"d{i}", {}, ttl=10 if i < 2 else 1000)
            await sim.sleep(30)  # two expire, swept by whichever coordinator gets there first
            return (a.metrics.value("multicast_registry_registered_identities"),
                    b.metrics.value("multicast_registry_registered_identities"))

    assert sim.run(body()) == (4, 4)
