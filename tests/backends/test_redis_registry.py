"""RedisRegistry specifics against a real redis-server: key layout, atomicity, options, batching."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryMessaging, RedisRegistry
from mcastlab.backends.redis_registry import index_suffix, plan_program
from mcastlab.errors import (
    BackendUnavailableError,
    ClosedError,
    ConfigError,
    OperationTimeoutError,
    RegistryFullError,
    UnknownIdentityError,
)
from mcastlab.filters import AllOf, AnyOf, Term, compile_filter

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]


def coord(registry: RedisRegistry, **config: Any) -> Coordinator:
    return Coordinator(Config(**config), registry=registry, messaging=MemoryMessaging())


async def raw(url: str, db: int = 0) -> aioredis.Redis:
    return aioredis.from_url(url.rsplit("/", 1)[0] + f"/{db}", protocol=2)


def test_plan_program_mirrors_memory_planning() -> None:
    a, b, c = Term("f", "s:a"), Term("f", "s:b"), Term("g", "n:1")
    assert plan_program(a) == ["T", index_suffix("f", "s:a")]
    assert plan_program(AllOf((a, AnyOf((b, c))))) == ["T", index_suffix("f", "s:a"), "T", index_suffix(
        "f", "s:b"), "T", index_suffix("g", "n:1"), "|", "2", "&", "2"]
    assert plan_program(AnyOf(())) == ["T", "nil"]
    assert plan_program(None) is None


def test_index_suffixes_are_encoded_and_bounded() -> None:
    assert index_suffix("status", "s:online") == "ix:status:s%3Aonline"
    assert index_suffix("a:b", "s:{x}") == "ix:a%3Ab:s%3A%7Bx%7D"
    assert index_suffix("a", "s:b:c") != index_suffix("a:b", "s:c")
    long = index_suffix("f", "s:" + "x" * 1000)
    assert long.startswith("ix#") and len(long) < 64 and "\n" not in long


def test_bad_options_are_config_errors() -> None:
    for kwargs in ({"prefix": ""}, {"prefix": "a{b}"}, {"prefix": "a b"}, {"key_grace": 0}, {"lanes": 0},
                   {"db": -1}):
        with pytest.raises(ConfigError):
            RedisRegistry("redis://127.0.0.1:1/0", **kwargs)
    with pytest.raises(ConfigError):
        RedisRegistry("http://127.0.0.1:1")


async def test_key_layout_uses_one_hash_tag(redis_server: Any, prefix: str) -> None:
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    assert reg.base == f"{prefix}{{{prefix.rstrip(':')}}}:"
    async with coord(reg) as c:
        await c.register("a:b{c}", {"status": "online", "n": 5, "tags": ["x"]}, ttl=30)
        r = await raw(redis_server.url)
        try:
            keys = sorted(k.decode() for k in await r.keys(prefix + "*"))
            base = reg.base
            assert keys == sorted([f"{base}z", f"{base}id:a%3Ab%7Bc%7D", f"{base}rows", f"{base}xs",
                                   f"{base}ix:status:s%3Aonline", f"{base}ix:n:n%3A5",
                                   f"{base}rix:status:s%3Aonline", f"{base}rix:n:n%3A5"])
            assert {k[k.index("{"): k.index("}") + 1] for k in keys} == {f"{{{prefix.rstrip(':')}}}"}
            h = await r.hgetall(f"{base}id:a%3Ab%7Bc%7D")
            assert set(h) == {b"m", b"r", b"e", b"x"}
            member = "a%3Ab%7Bc%7D"
            row_keys = [f"{base}rows", f"{base}rix:status:s%3Aonline", f"{base}rix:n:n%3A5"]
            want = member.encode() + b" " + h[b"e"] + b" " + h[b"r"] + b" " + h[b"m"]
            for key in row_keys:  # the packed row enumerates read, in every row hash of the identity
                assert await r.hget(key, member) == want, key
            assert await r.hget(f"{base}xs", member) == h[b"x"]
            assert await r.zscore(f"{base}z", member) == float(h[b"e"])
            ttl = await r.pttl(f"{base}id:a%3Ab%7Bc%7D")
            assert 30_000 < ttl <= 3_630_000  # the safety net: deadline plus key_grace
            await c.heartbeat("a:b{c}", ttl=60)  # a heartbeat moves the deadline everywhere
            h2 = await r.hgetall(f"{base}id:a%3Ab%7Bc%7D")
            assert h2[b"e"] != h[b"e"]
            moved = member.encode() + b" " + h2[b"e"] + b" " + h[b"r"] + b" " + h[b"m"]
            for key in row_keys:
                assert await r.hget(key, member) == moved, key
            await c.unregister("a:b{c}")
            assert await r.keys(prefix + "*") == []  # nothing left behind
        finally:
            await r.aclose()


async def test_no_ttl_identity_has_no_key_expiry(redis_server: Any, prefix: str) -> None:
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with coord(reg, default_ttl=None) as c:
        await c.register("forever")
        r = await raw(redis_server.url)
        try:
            assert await r.pttl(f"{reg.base}id:forever") == -1
            assert await r.zscore(f"{reg.base}z", "forever") == float("inf")
        finally:
            await r.aclose()


async def test_random_concurrent_operations_stay_consistent(redis_server: Any, prefix: str,
                                                            consistency: Any) -> None:
    rng = random.Random(7)
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with coord(reg, default_ttl=60, max_identities=40) as c:

        async def op(i: int) -> None:
            name = f"d{rng.randrange(30)}"
            kind = rng.random()
            md = {"status": rng.choice(["a", "b", "c"]), "g": rng.randrange(3), "x": [i]}
            try:
                if kind < 0.6:
                    await c.register(name, md, ttl=rng.choice([0.001, 60]))
                elif kind < 0.8:
                    await c.unregister(name)
                else:
                    await c.heartbeat(name)
            except (UnknownIdentityError, RegistryFullError):  # heartbeat of an absent one, full registry
                pass

        await asyncio.gather(*[op(i) for i in range(600)])
        await asyncio.sleep(0.01)
        await c.sweep()
        assert await consistency(redis_server.url, reg.base) == []
        assert await c.count() == await reg.identities()


async def test_concurrent_calls_share_pipelines(redis_server: Any, prefix: str) -> None:
    reg = RedisRegistry(redis_server.url, prefix=prefix, lanes=2)
    async with coord(reg, auto_sweep=False) as c:  # no background sweep adds commands
        await asyncio.gather(*[c.register(f"d{i}", {"i": i}) for i in range(400)])
        pipe = reg._pipe
        assert pipe is not None
        before = (pipe.batches, pipe.commands)
        await asyncio.gather(*[c.get(f"d{i}") for i in range(400)])
        batches, commands = pipe.batches - before[0], pipe.commands - before[1]
        assert commands == 400 and batches <= 20


async def test_scripts_are_reloaded_after_a_script_flush(redis_server: Any, prefix: str) -> None:
    async with coord(RedisRegistry(redis_server.url, prefix=prefix)) as c:
        await c.register("a")
        r = await raw(redis_server.url)
        try:
            await r.script_flush()
        finally:
            await r.aclose()
        await c.register("b", {"k": 1})
        assert [i.id for i in await c.enumerate({"k": 1})] == ["b"]


async def test_database_number_is_honoured(redis_server: Any, prefix: str) -> None:
    async with coord(RedisRegistry(redis_server.url, prefix=prefix, db=3)) as c:
        await c.register("in-db-3")
    r0, r3 = await raw(redis_server.url, 0), await raw(redis_server.url, 3)
    try:
        assert await r0.keys(prefix + "*") == []
        assert len(await r3.keys(prefix + "*")) == 4  # deadline set, hash, rows, xs
    finally:
        await r0.aclose()
        await r3.aclose()


async def test_acl_user_and_password(start_server: Any) -> None:
    srv = start_server("redis")
    r = await raw(srv.url)
    await r.execute_command("ACL", "SETUSER", "mcast", "on", ">s3cret", "~*", "+@all")
    await r.config_set("requirepass", "defaultpw")
    await r.aclose()
    async with coord(RedisRegistry(srv.url, username="mcast", password="s3cret")) as c:
        await c.register("ok")
        assert await c.count() == 1
    async with coord(RedisRegistry(srv.url, password="defaultpw")) as c:
        assert await c.count() == 1
    for user, password in (("mcast", "wrong"), (None, None)):
        with pytest.raises(BackendUnavailableError):
            await RedisRegistry(srv.url, username=user, password=password).open()


def test_tls_options_select_an_ssl_connection() -> None:
    import redis.asyncio as r

    from mcastlab.backends._redis_pipe import make_pool

    pool = make_pool("redis://127.0.0.1:1/0", tls=True, tls_ca_certs="/tmp/ca.pem", tls_verify=False)
    assert pool.connection_class is r.SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/tmp/ca.pem"
    assert make_pool("rediss://127.0.0.1:1/0").connection_class is r.SSLConnection
    with pytest.raises(ConfigError):
        make_pool("unix:///tmp/x.sock", tls=True)


async def test_unreachable_and_closed_are_typed(prefix: str) -> None:
    with pytest.raises(BackendUnavailableError):
        await RedisRegistry("redis://127.0.0.1:1/0", prefix=prefix, connect_timeout=0.5).open()
    reg = RedisRegistry("redis://127.0.0.1:1/0", prefix=prefix)
    with pytest.raises(ClosedError):
        await reg.get("x", now=0.0)


async def test_paused_server_times_out_then_recovers(start_server: Any, prefix: str) -> None:
    srv = start_server("redis")
    async with coord(RedisRegistry(srv.url, prefix=prefix, socket_timeout=0.3)) as c:
        await c.register("before")
        srv.pause()
        try:
            with pytest.raises(OperationTimeoutError):
                await c.register("during")
        finally:
            srv.resume()
        await c.register("after")
        got = sorted(i.id for i in await c.enumerate())
        assert got in (["after", "before"], ["after", "before", "during"])


async def test_full_registry_error_reports_the_live_count(redis_server: Any, prefix: str) -> None:
    async with coord(RedisRegistry(redis_server.url, prefix=prefix), max_identities=2) as c:
        await c.register("a")
        await c.register("b")
        with pytest.raises(RegistryFullError, match="2 live identities"):
            await c.register("c")


async def test_nested_plan_queries_leave_no_temporary_keys(redis_server: Any, prefix: str,
                                                           consistency: Any) -> None:
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with coord(reg) as c:
        for i in range(20):
            await c.register(f"d{i}", {"a": i % 3, "b": i % 4, "c": i % 5})
        flt = "(a == 1 or b == 2) and (c in [0, 1] or a == 2) and b != 3"
        cf = compile_filter(flt)
        assert isinstance(cf.plan, AllOf)
        got = sorted(i.id for i in await c.enumerate(flt))
        want = sorted(f"d{i}" for i in range(20)
                      if cf.predicate({"a": i % 3, "b": i % 4, "c": i % 5}))
        assert got == want
        assert await consistency(redis_server.url, reg.base) == []


async def test_tls_connection_to_a_real_tls_port(start_server: Any, prefix: str, tmp_path: Any) -> None:
    import shutil
    import subprocess

    from mcastlab.servers import free_port

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",  # noqa: ASYNC221
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    tls_port = free_port()
    start_server("redis", extra_args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                      "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                                      "--tls-auth-clients", "no"])
    url = f"rediss://127.0.0.1:{tls_port}/0"
    async with coord(RedisRegistry(url, prefix=prefix, tls_ca_certs=str(cert))) as c:
        await c.register("secure", {"k": 1})
        assert [i.id for i in await c.enumerate({"k": 1})] == ["secure"]
    with pytest.raises(BackendUnavailableError):  # the self-signed certificate is not trusted by default
        await RedisRegistry(url, prefix=prefix, connect_timeout=1).open()


@pytest.mark.parametrize("reader", ["rows", "hashes"])
async def test_both_row_readers_agree(redis_server: Any, prefix: str, reader: str) -> None:
    """The row hashes, and the fallback that reads the identity hashes (rows stored by an older version)."""
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with coord(reg, default_ttl=60) as c:
        if reader == "hashes":
            fetch = reg._fetch
            reg._fetch = lambda prog, now, fields=False: fetch(prog, now, fields=True)  # type: ignore[method-assign]
        for i in range(30):
            await c.register(f"d{i}", {"a": i % 3, "b": i % 4}, ttl=0.001 if i % 5 == 0 else 60)
        await c.unregister("d1")
        await asyncio.sleep(0.01)  # the 1 ms ones are dead now (swept or not)
        population = {f"d{i}": {"a": i % 3, "b": i % 4} for i in range(30) if i % 5 and i != 1}
        for flt in (None, "a == 1", "a == 1 and b in [0, 1]", "(a == 1 or b == 2) and a != 0"):
            cf = compile_filter(flt)
            want = sorted(k for k, md in population.items() if cf.predicate(md))
            assert sorted(i.id for i in await c.enumerate(flt)) == want, flt


async def test_missing_rows_and_rows_of_an_expired_hash_are_handled(redis_server: Any, prefix: str) -> None:
    """An identity without rows (stored by a version without row hashes) is read from its hash; one whose
    hash's safety TTL fired (its deadline long past) is skipped, and the claim then removes every entry
    it left (its index sets and rows say nothing of it any more)."""
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with coord(reg, auto_sweep=False) as c:
        await c.register("old", {"status": "online", "n": 1}, ttl=30)
        await c.register("new", {"status": "online", "n": 2}, ttl=30)
        await c.register("gone", {"status": "online", "n": 3}, ttl=0.001)
        await asyncio.sleep(0.01)
        b = reg.base
        r = await raw(redis_server.url)
        try:
            await r.hdel(f"{b}rows", "old")
            await r.hdel(f"{b}rix:status:s%3Aonline", "old")
            await r.hdel(f"{b}xs", "old")
            await r.delete(f"{b}id:gone")  # as if its safety-net TTL had fired
        finally:
            await r.aclose()
        for flt in ({"status": "online"}, None, 'status == "online" and n < 5'):
            got = {i.id: dict(i.metadata) for i in await c.enumerate(flt)}
            assert got == {"old": {"status": "online", "n": 1}, "new": {"status": "online", "n": 2}}, flt
        old = next(i for i in await c.enumerate({"status": "online"}) if i.id == "old")
        assert old.expires_at is not None and old.registered_at <= old.expires_at
        await c.heartbeat("old", ttl=60)  # a heartbeat writes the rows again
        assert await c.sweep() == 1  # gone's lifetime, claimed without its hash
        r = await raw(redis_server.url)
        try:
            assert await r.hexists(f"{b}rows", "old") and await r.hexists(f"{b}rix:status:s%3Aonline", "old")
            assert await r.hget(f"{b}xs", "old") == b"ix:status:s%3Aonline\nix:n:n%3A1"  # by the heartbeat
            for key in ("rows", "xs", "rix:status:s%3Aonline", "rix:n:n%3A3"):
                assert not await r.hexists(f"{b}{key}", "gone"), key
            assert not await r.sismember(f"{b}ix:status:s%3Aonline", "gone")
        finally:
            await r.aclose()


async def test_a_claim_past_luas_unpack_limit_is_recorded_whole(redis_server: Any, prefix: str) -> None:
    """A claim batch of 4,500 expiries (9,000 list items, past Lua's unpack limit) is recorded for its
    acknowledgement in chunks, and every identity is claimed exactly once."""
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with coord(reg, auto_sweep=False) as c:
        names = [f"e{i}" for i in range(4500)]
        for k in range(0, len(names), 500):
            await asyncio.gather(*(c.register(x, {"k": 1}, ttl=0.001) for x in names[k:k + 500]))
        await asyncio.sleep(0.01)
        got = await reg.claim_expired(now=time.time() + 1, limit=5000)
        assert sorted(e.id for e in got) == sorted(names)
        assert await reg.claim_expired(now=time.time() + 1, limit=5000) == []
