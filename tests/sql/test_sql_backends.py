"""Backend-specific behaviour: SimPy runtime, several processes on one SQLite file, outages, bad input."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import simpy

from mcastlab import Config, Coordinator, ExpirationEvent
from mcastlab import servers as srv
from mcastlab.backends import (
    DurableRecord,
    PostgresDurability,
    PostgresRegistry,
    SqliteDurability,
    SqliteRegistry,
)
from mcastlab.errors import (
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    UnsupportedError,
    UsageError,
)
from mcastlab.identity import Identity
from mcastlab.runtime import SimPyRuntime

from .conftest import unique


def test_sqlite_registry_under_the_simpy_runtime() -> None:
    sim = SimPyRuntime(simpy.Environment())
    events: list[ExpirationEvent] = []

    async def body() -> Any:
        async with Coordinator(Config(), registry=SqliteRegistry(indexes=["status"]), runtime=sim) as c:
            c.add_listener(lambda e: events.append(e) if isinstance(e, ExpirationEvent) else None)
            await c.register("a", {"status": "online"}, ttl=60)
            await c.register("b", {"status": "online"}, ttl=120)
            await sim.sleep(59.9)
            before = await c.count({"status": "online"})
            await sim.sleep(0.1)  # exactly at a's deadline
            at = await c.count({"status": "online"})
            await sim.sleep(600)
            return before, at, await c.count()

    assert sim.run(body()) == (2, 1, 0)
    assert [(e.identity, e.deadline) for e in events] == [("a", 60.0), ("b", 120.0)]
    assert all(0 <= e.lag_s <= Config().sweep_resolution + 1e-9 for e in events)


CLAIMER = textwrap.dedent('''
    import asyncio, json, sys
    from mcastlab.backends import SqliteRegistry

    async def main():
        reg = SqliteRegistry(sys.argv[1])
        await reg.open()
        got = []
        while batch := await reg.claim_expired(now=1e9, limit=3):
            got += [x.id for x in batch]
        print(json.dumps(got))

    asyncio.run(main())
''')


def test_processes_sweeping_one_sqlite_file_claim_each_expiry_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    names = [f"d{i:03d}" for i in range(300)]

    async def load() -> None:
        reg = SqliteRegistry(path)
        await reg.open()
        await reg.bulk_load(Identity(n, {"i": i}, 0.0, float(i)) for i, n in enumerate(names))
        await reg.close()

    asyncio.run(load())
    script = tmp_path / "claim.py"
    script.write_text(CLAIMER)
    procs = [subprocess.Popen([sys.executable, str(script), path], stdout=subprocess.PIPE) for _ in range(3)]
    claimed = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert sorted(x for got in claimed for x in got) == names  # all claimed, none twice


async def unavailable(call: Any) -> None:
    """``call()`` raises BackendUnavailableError (a backend process may outlive its killed postmaster for
    a moment, so a call or two may still succeed)."""
    for _ in range(20):
        try:
            await call()
        except BackendUnavailableError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never raised BackendUnavailableError")


@pytest.mark.live
async def test_postgres_outage_raises_unavailable_then_recovers() -> None:
    server = srv.start_postgres()
    try:
        reg = PostgresRegistry(server.url, table="outage", timeout=5)
        dur = PostgresDurability(server.url, prefix="outage", timeout=5)
        async with Coordinator(Config(sweep_interval=3600.0), registry=reg, durability=dur) as c:
            await c.register("a", {"status": "online"})
            server.kill()
            await unavailable(lambda: c.enumerate({"status": "online"}))
            await unavailable(lambda: c.register("b", {}))
            await unavailable(lambda: dur.record(DurableRecord("m", "true", b"p", 0.0, ["a"])))
            server.restart()
            for _ in range(3):  # the pool drops broken connections as it meets them
                try:
                    await c.register("b", {"status": "online"})
                    break
                except BackendUnavailableError:
                    continue
            assert sorted(i.id for i in await c.enumerate({"status": "online"})) == ["a", "b"]
            assert (await c.multicast({"status": "online"}, b"x")).targeted == 2
    finally:
        server.stop()


@pytest.mark.live
async def test_postgres_refused_connection_is_unavailable() -> None:
    reg = PostgresRegistry(f"postgresql://postgres@127.0.0.1:{srv.free_port()}/postgres", timeout=2)
    with pytest.raises(BackendUnavailableError):
        await reg.open()


@pytest.mark.live
async def test_postgres_rejects_nul_in_metadata_and_changes_nothing(pg_server: Any) -> None:
    async with Coordinator(registry=PostgresRegistry(pg_server.url, table=unique("nul"))) as c:
        with pytest.raises(UnsupportedError, match="NUL"):
            await c.register("a", {"k": "a\x00b"})
        assert await c.count() == 0


async def test_sqlite_keeps_nul_in_metadata_verbatim() -> None:
    async with Coordinator(registry=SqliteRegistry()) as c:
        await c.register("a", {"k": "a\x00b"})
        assert (await c.get("a")).metadata["k"] == "a\x00b"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [
    lambda: SqliteRegistry(table="x; DROP TABLE y"),
    lambda: SqliteRegistry(table=""),
    lambda: SqliteRegistry(path=""),
    lambda: SqliteRegistry(indexes=["it's"]),
    lambda: SqliteRegistry(indexes=[3]),
    lambda: SqliteDurability(prefix="a-b"),
    lambda: SqliteDurability(retention=0),
    lambda: PostgresRegistry("redis://localhost"),
    lambda: PostgresRegistry("postgresql://x", table='"q"'),
    lambda: PostgresRegistry("postgresql://x", pool_size=0),
    lambda: PostgresDurability("postgresql://x", timeout=-1),
])
def test_bad_options_raise_config_errors(bad: Any) -> None:
    with pytest.raises(ConfigError):
        bad()


async def test_use_before_open_is_a_clear_error() -> None:
    from mcastlab.filters import compile_filter

    with pytest.raises(ClosedError):
        await SqliteRegistry().query(compile_filter(None), now=0)
    with pytest.raises(UsageError):
        await SqliteDurability().pending("a", since=0)
    with pytest.raises(ClosedError):
        await PostgresRegistry("postgresql://x").count(compile_filter(None), now=0)


async def test_sqlite_uses_its_expression_indexes() -> None:
    reg = SqliteRegistry(indexes=["status", "hw.model"])
    async with Coordinator(registry=reg) as c:
        for flt in ({"status": "x"}, 'status in ["a", "b"]', 'hw.model.startswith("m")', 'status > "m"'):
            assert "USING INDEX identities_md_" in reg.explain(c.compile(flt), now=0), flt
        assert "USING INDEX identities_md_" not in reg.explain(c.compile('not (status == "x")'), now=0)


@pytest.mark.live
async def test_postgres_queries_can_use_the_gin_index(pg_server: Any) -> None:
    table = unique("gin")
    reg = PostgresRegistry(pg_server.url, table=table, server_settings={"enable_seqscan": "off"})
    async with Coordinator(registry=reg) as c:
        await reg.bulk_load(Identity(f"d{i}", {"g": i % 100, "hw": {"m": f"m{i % 50}"}}, 0.0, 1e12)
                            for i in range(3000))
        for flt in ({"g": 7}, "g in [1, 2, 3]", 'hw.m == "m3" and g != 1', 'g == 1 or hw.m == null'):
            plan = await reg.explain(c.compile(flt), now=0)
            assert f"Bitmap Index Scan on {table}_metadata" in plan, (flt, plan)
        assert f"{table}_metadata" not in await reg.explain(c.compile("not (g == 1)"), now=0)


async def test_sqlite_in_memory_keeps_its_data_across_coordinators() -> None:
    reg = SqliteRegistry()
    async with Coordinator(registry=reg) as c:
        await c.register("a", {})
    async with Coordinator(registry=reg) as c:  # like MemoryRegistry: the object holds the data
        assert [i.id for i in await c.enumerate()] == ["a"]
