"""A scenario's ``servers:`` section: addresses of running servers for the live slots that name none."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab.errors import ScenarioError
from mcastlab.workloads import load_scenario, run_scenario
from mcastlab.workloads.backends import _needed_servers, live_servers

from .wl_helpers import LIVE_SMALL, SCENARIOS

IOT = SCENARIOS / "iot-device-management.yaml"
ALL = {"redis": "redis://h:1/0", "nats": ["nats://a:1", "nats://b:2"], "postgres": "postgresql://u@h/db",
       "kafka": "k1:9092,k2:9092", "redis-cluster": ["redis://c1:7000", "redis://c2:7001"]}


def test_the_section_is_parsed_and_fills_every_slot_that_names_no_server() -> None:
    scn = load_scenario(IOT, overrides={"servers": ALL, "slots.registry": "redis",
                                        "slots.messaging": {"backend": "nats", "cluster": 3}})
    assert scn.servers == ALL
    assert _needed_servers(scn) == []  # nothing is started: every slot's server is named
    with live_servers(scn) as srv:
        assert srv.started == {} and srv.clusters == {}
        assert srv.urls["redis"] == "redis://h:1/0" and srv.urls["nats-cluster"] == ["nats://a:1", "nats://b:2"]
        assert srv.versions["redis-server"] == "external"


def test_a_slot_option_wins_over_the_section() -> None:
    scn = load_scenario(IOT, overrides={"servers": {"nats": "nats://a:1"}, "slots.registry": "redis"})
    assert _needed_servers(scn) == ["redis"]  # only nats was named


@pytest.mark.parametrize(("servers", "says"), [
    ({"mongo": "x"}, "servers.mongo: unknown server kind"),
    ({"redis": ["redis://a:1", "redis://b:2"]}, "servers.redis: expected a redis:// URL"),
    ({"redis-cluster": "redis://a:1"}, "servers.redis-cluster: expected a list"),
    ({"nats": ""}, "servers.nats: expected a nats:// URL"),
    ({"kafka": 9092}, "servers.kafka: expected a host:port"),
    ("redis://h:1", "servers: expected a mapping"),
])
def test_bad_sections_are_refused_with_the_key(servers: Any, says: str) -> None:
    with pytest.raises(ScenarioError, match=says):
        load_scenario(IOT, overrides={"servers": servers})


@pytest.mark.live
@pytest.mark.timeout(120)
def test_a_live_run_uses_the_named_servers_and_starts_none(urls: dict[str, str]) -> None:
    import redis

    over = {**LIVE_SMALL["iot-device-management"], "servers": {"redis": urls["redis"], "nats": urls["nats"]}}
    run = run_scenario(IOT, mode="live", overrides=over, progress=False)
    versions = run.manifest["backend_versions"]
    assert versions["redis-server"] == versions["nats-server"] == "external"
    assert run.ops["ok"].mean() > 0.95 and len(run.expirations) > 0
    assert any(redis.Redis.from_url(urls["redis"]).scan_iter(match="mcl:*", count=1000))  # it wrote there
