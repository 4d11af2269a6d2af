"""Every bad input raises a typed McastlabError with an explanatory message and changes nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.errors import (
    FilterError,
    FilterSyntaxError,
    FilterTooComplexError,
    InvalidIdentityError,
    InvalidMetadataError,
    InvalidTTLError,
    McastlabError,
    PayloadTooLargeError,
    RegistryFullError,
    UsageError,
)
from mcastlab.runtime import SimPyRuntime


def snapshot(sim: SimPyRuntime, c: Coordinator) -> list[tuple[str, dict[str, Any], float | None]]:
    return [(i.id, dict(i.metadata), i.expires_at) for i in sim.run(c.enumerate())]


@pytest.fixture
def coord(sim: SimPyRuntime) -> Coordinator:
    c = Coordinator(Config(max_identities=3, max_metadata_bytes=200, max_payload_bytes=10), runtime=sim)
    sim.run(c.register("keep", {"status": "online"}, ttl=100))
    return c


BAD_NAMES = [
    ("", "empty"), ("a" * 257, "257 characters"), ("has space", "forbidden character"),
    ("tab\there", "forbidden"), ("nul\x00", "forbidden"), ("zw\u200bj", "forbidden"), (42, "must be a str"),
    (None, "must be a str"), (b"bytes", "must be a str"),
]


@pytest.mark.parametrize(("name", "needle"), BAD_NAMES)
def test_bad_identity_names(sim: SimPyRuntime, coord: Coordinator, name: Any, needle: str) -> None:
    before = snapshot(sim, coord)
    with pytest.raises(InvalidIdentityError, match=needle) as info:
        sim.run(coord.register(name, {}))
    assert info.value.identity == name
    for op in (coord.heartbeat, coord.unregister):
        with pytest.raises(InvalidIdentityError):
            sim.run(op(name))
    assert snapshot(sim, coord) == before


def test_unicode_and_wildcard_names_are_valid(sim: SimPyRuntime, coord: Coordinator) -> None:
    for name in ("温度计-7", "a.b.c", "*", ">", "dev:{x}", "ünïcødé"):
        sim.run(coord.unregister("keep"))
        sim.run(coord.register(name, {"ok": True}))
        assert [i.id for i in sim.run(coord.enumerate({"ok": True}))] == [name]
        sim.run(coord.unregister(name))
        sim.run(coord.register("keep", {"status": "online"}, ttl=100))


BAD_METADATA = [
    ("not a dict", "must be a dict"), ({1: "x"}, "keys must be str"), ({"": 1}, "empty key"),
    ({"s": {1, 2}}, "type set"), ({"f": math.nan}, "NaN"), ({"f": math.inf}, "NaN or infinity"),
    ({"o": object()}, "type object"), ({"big": "x" * 300}, "limit is 200"),
    ({"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}, "deeper"),
    ({"nested": [{"ok": 1}, {"bad": b"bytes"}]}, r"nested\[1\]\.bad"),
]


@pytest.mark.parametrize(("md", "needle"), BAD_METADATA)
def test_bad_metadata(sim: SimPyRuntime, coord: Coordinator, md: Any, needle: str) -> None:
    before = snapshot(sim, coord)
    with pytest.raises(InvalidMetadataError, match=needle):
        sim.run(coord.register("keep", md))  # an existing identity stays as it was
    assert snapshot(sim, coord) == before


@pytest.mark.parametrize("ttl", [0, -1, -0.5, math.nan, math.inf, "5", True, 1e10, 1e308])
def test_bad_ttls(sim: SimPyRuntime, coord: Coordinator, ttl: Any) -> None:
    before = snapshot(sim, coord)
    with pytest.raises(InvalidTTLError, match="ttl (must be|of .* is longer)"):
        sim.run(coord.register("keep", {"status": "x"}, ttl=ttl))
    with pytest.raises(InvalidTTLError):
        sim.run(coord.heartbeat("keep", ttl=ttl))
    assert snapshot(sim, coord) == before


def test_payload_limits_and_types(sim: SimPyRuntime, coord: Coordinator) -> None:
    with pytest.raises(PayloadTooLargeError, match="11 bytes; the limit is 10") as info:
        sim.run(coord.multicast(None, b"x" * 11))
    assert (info.value.size, info.value.limit) == (11, 10)
    with pytest.raises(UsageError, match="bytes or str"):
        sim.run(coord.multicast(None, {"not": "bytes"}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="mode must be one of"):
        sim.run(coord.multicast(None, b"x", mode="shout"))
    assert sim.run(coord.multicast(None, "é" * 5)).delivered == 1  # 10 bytes of UTF-8 fits


def test_filter_errors_are_typed(sim: SimPyRuntime, coord: Coordinator) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        sim.run(coord.enumerate('status = "online"'))
    assert info.value.position == 7
    with pytest.raises(FilterError):
        sim.run(coord.enumerate(12345))
    deep = "not " * 6 + "a == 1"
    with pytest.raises(FilterTooComplexError, match="max_filter_depth"):
        sim.run(coord.enumerate(deep))
    wide = " or ".join(f"a == {i}" for i in range(21))
    with pytest.raises(FilterTooComplexError, match="max_clauses"):
        sim.run(coord.count(wide))
    with pytest.raises(FilterSyntaxError):
        sim.run(coord.multicast("__import__('os').system('true')", b"x"))


def test_registry_full_refuses_new_but_allows_reregister(sim: SimPyRuntime, coord: Coordinator) -> None:
    sim.run(coord.register("b", {}))
    sim.run(coord.register("c", {}))
    before = snapshot(sim, coord)
    with pytest.raises(RegistryFullError, match="max_identities=3") as info:
        sim.run(coord.register("d", {}))
    assert info.value.limit == 3
    assert snapshot(sim, coord) == before
    sim.run(coord.register("c", {"updated": True}))  # re-registering an existing one still works
    assert sim.run(coord.count({"updated": True})) == 1


def test_registry_full_makes_room_by_sweeping_expired(sim: SimPyRuntime) -> None:
    cfg = Config(max_identities=2, sweep_interval=10_000, sweep_resolution=10_000)

    async def body() -> Any:
        async with Coordinator(cfg, runtime=sim) as c:
            await c.register("a", {}, ttl=1)
            await c.register("b", {}, ttl=1)
            await sim.sleep(2)
            await c.register("c", {})
            return [i.id for i in await c.enumerate()], c.expired_total

    assert sim.run(body()) == (["c"], 2)


def test_all_errors_share_the_root() -> None:
    for exc in (InvalidIdentityError, InvalidMetadataError, InvalidTTLError, PayloadTooLargeError,
                RegistryFullError, FilterSyntaxError, FilterTooComplexError):
        assert issubclass(exc, McastlabError)
        assert issubclass(exc, UsageError)


def test_fast_name_check_agrees_with_the_character_rule() -> None:
    """The one-call fast path accepts exactly the names the per-character rule accepts."""
    import unicodedata

    from mcastlab.identity import validate_identity

    def by_rule(name: str) -> bool:
        return all(not ch.isspace() and unicodedata.category(ch) not in
                   ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in name)

    for cp in range(0x110000):
        ch = chr(cp)
        try:
            validate_identity("a" + ch)
            ok = True
        except InvalidIdentityError:
            ok = False
        assert ok == by_rule("a" + ch), f"U+{cp:04X}"
