"""NatsMessaging on a real 3-node NATS cluster: inboxes reachable from every node when inbox() returns,
a node killed during a multicast (clients reconnect, lost messages counted as failures), and a device
played by a bare nats-py client that imports no mcastlab code (the wire contract, docs/wire-protocol.md)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcastlab import Config, Coordinator, servers
from mcastlab.backends import DELIVERED, MemoryRegistry, NatsMessaging
from mcastlab.errors import BackendUnavailableError, ServerError

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]

DEVICE = Path(__file__).parent / "devices" / "bare_nats_device.py"


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``predicate()`` until it holds (events happen in nats-py's background tasks)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def _cluster() -> servers.NatsClusterNodes:
    try:
        return servers.start_nats_cluster(3)
    except ServerError as exc:
        if "not found" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[servers.NatsClusterNodes]:
    """A NATS cluster for the tests that do not kill nodes."""
    cluster = _cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster() -> Iterator[servers.NatsClusterNodes]:
    """A NATS cluster for this test alone (it kills a node)."""
    cluster = _cluster()
    yield cluster
    cluster.stop()


def test_cluster_launcher_routes_every_node_and_restarts_one(own_cluster: servers.NatsClusterNodes) -> None:
    c = own_cluster
    ids = [c.routes(i) for i in range(3)]
    assert all(len(r) == 2 for r in ids)
    c.kill(1)
    assert c.alive() == [0, 2]
    c.restart(1)
    c.wait_healthy()
    assert all(len(c.routes(i)) == 2 for i in range(3))
    pids = [s.pid for s in c.nodes]
    c.stop()
    assert c.alive() == [] and all(not servers.Server.alive(s) for s in c.nodes), pids


def test_servers_cli_starts_reports_and_stops_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from mcastlab.servers import main

    monkeypatch.setenv("MCASTLAB_STATE_DIR", str(tmp_path))
    assert main(["up", "--nats-cluster", "2"]) == 0
    out = capsys.readouterr().out
    urls = next(line for line in out.splitlines() if line.startswith("export MCASTLAB_NATS_CLUSTER_URLS="))
    assert len(urls.split("=", 1)[1].split(",")) == 2
    assert main(["up", "--nats-cluster", "2"]) == 0 and "already running" in capsys.readouterr().out
    assert main(["status"]) == 0 and capsys.readouterr().out.count("nats-cluster") == 2
    assert main(["down", "nats-cluster"]) == 0
    assert "no servers recorded" in (main(["status"]), capsys.readouterr().out)[1]
    assert main(["up", "--nats-cluster", "-1"]) == 2


async def test_inbox_is_reachable_from_every_node_when_it_returns(
        shared_cluster: servers.NatsClusterNodes) -> None:
    """Receiver on node 0, sender on node 2: a multicast sent the moment inbox() returns is delivered."""
    urls = shared_cluster.urls
    receivers = NatsMessaging([urls[0]], prefix="reach")  # nodes 1 and 2 are discovered, then probed
    config = Config(default_ttl=60, send_timeout=2.0, send_retries=0)  # no retry hides a miss
    reg = MemoryRegistry()
    async with Coordinator(config, registry=reg, messaging=receivers) as rx, \
            Coordinator(config, registry=reg, messaging=NatsMessaging([urls[2]], prefix="reach")) as tx:
        for i in range(100):
            await tx.register(f"dev-{i}", {"i": i})
            async with rx.inbox(f"dev-{i}") as box:
                res = await tx.multicast({"i": i}, b"first", mode="ack")
                assert res.statuses == {f"dev-{i}": DELIVERED}
                assert (await box.get(timeout=2)).payload == b"first"
        names = [f"dev-{i}" for i in range(100)]
        async with contextlib.AsyncExitStack() as stack:  # 100 inboxes opened at once
            boxes = await asyncio.gather(*(stack.enter_async_context(rx.inbox(n)) for n in names))
            res = await tx.multicast(None, b"all", mode="ack")
            assert res.statuses == dict.fromkeys(names, DELIVERED)
            assert [(await box.get(timeout=2)).payload for box in boxes] == [b"all"] * len(names)
        assert receivers._probe is not None and receivers._probe.probes >= 2 * 200


async def test_the_probe_waits_for_an_answer_through_every_node_and_gives_up_typed(
        shared_cluster: servers.NatsClusterNodes) -> None:
    """The confirmation behind inbox(): through nodes 1 and 2, only the subscription's own token counts."""
    import nats

    from mcastlab.backends._nats_probe import InterestProbe, is_probe

    urls = shared_cluster.urls
    nc = await nats.connect(urls[0])
    probe = InterestProbe([urls[0]], {}, timeout=0.3)
    try:
        with pytest.raises(BackendUnavailableError):  # nobody listens: typed failure after the timeout
            await probe.confirm(nc, "probe.nobody", b"token")
        answers: list[str] = []
        answering = asyncio.Event()

        async def late(msg: Any) -> None:  # hears probes at once, answers only once told to
            if is_probe(msg) and answering.is_set():
                answers.append(msg.reply)
                await nc.publish(msg.reply, b"right")

        async def wrong(msg: Any) -> None:  # another listener on the subject, answering with its own token
            if is_probe(msg):
                await nc.publish(msg.reply, b"wrong")

        await nc.subscribe("probe.late", cb=late)
        await nc.subscribe("probe.late", cb=wrong)
        asyncio.get_running_loop().call_later(0.1, answering.set)
        probe.timeout = 5.0
        await probe.confirm(nc, "probe.late", b"right")
        assert answering.is_set() and len(answers) >= 2  # one confirmed answer through each other node
        assert probe.probes > 2  # "not yet" was probed again
    finally:
        await probe.close()
        await nc.close()


async def test_node_killed_during_a_multicast(own_cluster: servers.NatsClusterNodes, capsys: Any) -> None:
    """Half the receivers on node 0, half on node 2, the sender on node 1. Node 0 hangs (SIGSTOP), an acked
    multicast starts, and node 0 dies (SIGKILL) while its half of the messages are in flight: those never
    arrive and each is a failure in the result; node 0's receivers reconnect to a surviving node and the
    next multicast reaches everyone through the same coordinators."""
    urls = own_cluster.urls
    doomed = NatsMessaging([urls[0]], prefix="kill", reconnect_time_wait=0.05)  # the others are discovered
    steady = NatsMessaging([urls[2]], prefix="kill")
    config = Config(default_ttl=60, send_timeout=1.0, send_retries=0, max_in_flight=300)
    reg = MemoryRegistry()
    names = [f"dev-{i}" for i in range(300)]
    async with Coordinator(config, registry=reg, messaging=doomed) as rx0, \
            Coordinator(config, registry=reg, messaging=steady) as rx2, \
            Coordinator(config, registry=reg, messaging=NatsMessaging([urls[1]], prefix="kill")) as tx:
        for name in names:
            await tx.register(name, {"g": 1})
        async with contextlib.AsyncExitStack() as stack:
            boxes = await asyncio.gather(*(stack.enter_async_context((rx0 if i % 2 else rx2).inbox(n))
                                           for i, n in enumerate(names)))
            own_cluster.nodes[0].pause()
            sending = asyncio.ensure_future(tx.multicast({"g": 1}, b"during", mode="ack"))
            await until(lambda: sum(len(b) for b in boxes[0::2]) == len(names) // 2)  # node 2's half
            own_cluster.kill(0)
            killed = time.monotonic()
            back_at: list[float] = []

            async def reconnected() -> None:
                await until(lambda: doomed.reconnects >= 1)
                back_at.append(time.monotonic())

            back = asyncio.ensure_future(reconnected())
            res = await sending
            got = {b.identity for b in boxes if len(b)}
            lost = len(names) - len(got)
            assert res.targeted == res.delivered + res.failed == len(names)
            assert {n for n, st in res.statuses.items() if st == DELIVERED} <= got  # acknowledged: received
            assert lost > 0 and res.failed >= lost  # every message that never arrived is a failure
            await back  # node 0's receivers reconnected to a surviving node
            for box in boxes:
                while box.get_nowait() is not None:
                    pass
            rounds = 0
            while True:  # resubscriptions propagate over the routes asynchronously
                rounds += 1
                after = await tx.multicast({"g": 1}, b"after", mode="ack")
                if after.delivered == len(names):
                    break
                assert rounds < 100, f"not everyone reachable again: {after.failures}"
                await asyncio.sleep(0.05)
    with capsys.disabled():
        print(f"\n[nats node kill] multicast to {len(names)}: delivered {res.delivered}, failed {res.failed} "
              f"({dict(collections.Counter(res.failures.values()))}); never arrived {lost}; "
              f"node 0's receivers reconnected {(back_at[0] - killed) * 1000:.0f} ms after the kill "
              f"(disconnects {doomed.disconnects}, reconnects {doomed.reconnects}); full delivery again "
              f"after {rounds} multicast(s)")


async def test_a_bare_nats_device_follows_the_wire_contract(shared_cluster: servers.NatsClusterNodes) -> None:
    """The device (a subprocess with only nats-py) subscribes on node 0; mcastlab multicasts from node 2."""
    urls = shared_cluster.urls
    identity = "sensor-42/ü.x"  # needs the %-encoding rule of the contract
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(sys.executable, str(DEVICE), urls[0], "wire", identity, "1",
                                                stdout=pipe, stderr=pipe)
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        messaging = NatsMessaging([urls[2]], prefix="wire")
        assert first == {"subscribed": messaging.subject_for(identity)}
        config = Config(default_ttl=60, send_timeout=2.0, send_retries=0)
        async with Coordinator(config, messaging=messaging) as c:
            await c.register(identity, {"kind": "sensor"})
            for _ in range(100):  # a bare client does not wait for its interest to reach every node
                res = await c.multicast({"kind": "sensor"}, b'{"command":"update"}', mode="ack")
                if res.delivered:
                    break
                await asyncio.sleep(0.02)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert res.statuses == {identity: DELIVERED}, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    msg, modules = lines[0], lines[-1]["modules"]
    assert msg["payload"] == '{"command":"update"}' and msg["msg_id"] == res.message_id
    assert msg["attempt"] == 1 and msg["redelivery"] is False and msg["acked"] is True
    assert res.started_at - 1 <= msg["sent_at"] <= res.started_at + res.duration_s + 1
    assert "nats" in modules and "mcastlab" not in modules
