"""The Kafka-like simulated messaging (mcastlab.sim.kafka): selection from a sim spec or a scenario slot,
the partitioned log (partitions in parallel, one hot partition queues), batching and linger, delivery
after the consumer's fetch, the publish-only contract, faults, and determinism. No servers needed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, UNAVAILABLE
from mcastlab.errors import ConfigError, UnsupportedError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimMessaging, SimSpec, make_sim_backends
from mcastlab.sim.kafka import KafkaSpec, SimKafkaMessaging

FIXED = {"append": {"kind": "constant", "value": 1e-3, "per_item": 1e-5},
         "ack": {"kind": "constant", "value": 2e-4}, "fetch": {"kind": "constant", "value": 3e-3}}
FAST_PRODUCER = {"per_message": {"kind": "constant", "value": 1e-6}}


def run(spec: dict[str, Any], body: Any, seed: int = 3, **config: Any) -> Any:
    rt = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends(spec, rng=np.random.default_rng(seed))
    config.setdefault("max_identities", None)

    async def main() -> Any:
        async with Coordinator(Config(**config), registry=reg, messaging=msg, runtime=rt) as c:
            return await body(c, msg)

    return rt.run(main())


def test_selected_by_a_kafka_section_only() -> None:
    _, plain = make_sim_backends({}, rng=np.random.default_rng(0))
    _, kafka = make_sim_backends({"kafka": {}}, rng=np.random.default_rng(0))
    assert type(plain) is SimMessaging and isinstance(kafka, SimKafkaMessaging)
    assert kafka.modes == ("publish",) and kafka.capabilities.publish_batch
    spec = SimSpec.from_dict({"kafka": {"partitions": 3}})
    assert SimSpec.from_dict(spec.to_dict()).kafka == spec.kafka  # round trip


@pytest.mark.parametrize(("kafka", "key"), [
    ({"partitions": 0}, "sim.kafka.partitions"), ({"linger": -1}, "sim.kafka.linger"),
    ({"batch_records": 1.5}, "sim.kafka.batch_records"), ({"fetch": "x"}, "sim.kafka.fetch"),
    ({"partitons": 2}, "sim.kafka.partitons"), ({"broker": 3}, "sim.kafka.broker"),
])  # fmt: skip
def test_bad_kafka_sections_are_refused(kafka: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimSpec.from_dict({"kafka": kafka})
    assert info.value.key == key


def test_publish_delivers_after_append_and_fetch() -> None:
    async def body(c: Coordinator, msg: Any) -> Any:
        await c.register("d")
        async with c.inbox("d") as box:
            t0 = c.runtime.now()
            res = await c.multicast(None, b"x")
            got = await box.get(timeout=1)
            return t0, res, got

    t0, res, got = run({"kafka": {**FIXED, "partitions": 1}, "messaging": FAST_PRODUCER}, body)
    assert res.statuses == {"d": DELIVERED}
    # framing 1 µs, then append 1 ms + 10 µs, then the ack 0.2 ms (flush) / the fetch 3 ms (inbox)
    fan_out_start = t0 + res.enumerate_s  # (the simulated registry's query comes first)
    assert res.duration_s - res.enumerate_s == pytest.approx(1e-6 + 1.01e-3 + 2e-4, rel=1e-6)
    assert got.received_at - fan_out_start == pytest.approx(1e-6 + 1.01e-3 + 3e-3, rel=1e-6)


def test_partitions_append_in_parallel_and_batches_split() -> None:
    async def body(c: Coordinator, msg: Any) -> Any:
        for i in range(4000):
            await c.register(f"d{i}")
        res = await c.multicast(None, b"x")
        return res.duration_s - res.enumerate_s, msg.batches

    def fan_out(**kafka: Any) -> tuple[float, int]:
        return run({"kafka": {**FIXED, **kafka}, "messaging": FAST_PRODUCER}, body)

    one, b1 = fan_out(partitions=1)
    eight, b8 = fan_out(partitions=8)
    assert (b1, b8) == (1, 8)
    assert eight < one / 4  # 8 leaders append ~500 records each at once instead of 4000 in a row
    split, b_split = fan_out(partitions=1, batch_records=1000)
    # four appends, each paying the per-batch cost (3 ms more) while overlapping the framing (3 ms less,
    # at 1 µs a message): at this design point the two cancel out exactly
    assert b_split == 4 and split == pytest.approx(one, rel=1e-9)
    def faster(**kafka: Any) -> tuple[float, int]:
        fast = {"per_message": {"kind": "constant", "value": 1e-7}}
        return run({"kafka": {**FIXED, **kafka}, "messaging": fast}, body)

    assert faster(partitions=1, batch_records=1000)[0] > faster(partitions=1)[0]  # less overlap: dearer
    lingering, _ = fan_out(partitions=1, linger=0.05)
    assert lingering == pytest.approx(one + 0.05, rel=1e-6)


def test_ack_mode_is_refused() -> None:
    async def body(c: Coordinator, msg: Any) -> Any:
        await c.register("d")
        await c.multicast(None, b"x", mode="ack")

    with pytest.raises(UnsupportedError):
        run({"kafka": {}}, body)


def test_an_outage_fails_the_fan_out_and_loses_nothing_after() -> None:
    spec = {"kafka": {}, "faults": [{"target": "messaging", "kind": "outage", "start": 10, "duration": 5}]}

    async def body(c: Coordinator, msg: Any) -> Any:
        for i in range(50):
            await c.register(f"d{i}")
        async with c.inbox("d7") as box:
            await c.runtime.sleep(11)
            down = await c.multicast(None, b"down")
            await c.runtime.sleep(10)
            up = await c.multicast(None, b"up")
            got = await box.get(timeout=1)
            return down, up, got

    down, up, got = run(spec, body, send_retries=0)
    assert set(down.statuses.values()) == {UNAVAILABLE} and down.failed == 50
    assert up.delivered == 50 and got.payload == b"up"


def test_same_seed_same_latencies() -> None:
    async def body(c: Coordinator, msg: Any) -> Any:
        for i in range(300):
            await c.register(f"d{i}")
        async with c.inbox("d1") as box:
            out = [(await c.multicast(None, b"x")).duration_s for _ in range(5)]
            return out, [(await box.get(timeout=1)).received_at for _ in range(5)]

    assert run({"kafka": {}}, body, seed=5) == run({"kafka": {}}, body, seed=5)
    assert run({"kafka": {}}, body, seed=5) != run({"kafka": {}}, body, seed=6)


def test_a_scenario_with_a_kafka_slot_simulates_kafka() -> None:
    from mcastlab.workloads import load_scenario
    from mcastlab.workloads.backends import sim_backends

    scn = load_scenario("scenarios/user-presence.yaml", overrides={"slots.messaging": "kafka"})
    backends = sim_backends(scn, np.random.default_rng(0))
    assert isinstance(backends.messaging, SimKafkaMessaging)
    assert KafkaSpec.from_dict({}).partitions == backends.messaging.kafka.partitions
