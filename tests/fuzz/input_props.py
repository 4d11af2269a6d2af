"""Properties of the pure entry points: identity/metadata/TTL/payload validation, filters, configs.

Each ``check_*`` takes one drawn case and raises :class:`~.oracle.PropertyError` (or lets an assertion
fail) when the property does not hold; the pytest suite and ``scripts/fuzz.py`` call the same functions.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import simpy
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryRegistry, SqliteRegistry
from mcastlab.errors import ConfigError, McastlabError
from mcastlab.filters import CompiledFilter, compile_filter, to_sql
from mcastlab.identity import validate_identity, validate_metadata, validate_payload, validate_ttl
from mcastlab.runtime import SimPyRuntime

from . import strategies as fz
from .oracle import PropertyError, call, check_error, safe_repr

# ----------------------------------------------------------------------------- validators


def validator_cases() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("identity"), fz.identity_names()),
        st.tuples(st.just("metadata"), fz.metadata()),
        st.tuples(st.just("ttl"), fz.ttls()),
        st.tuples(st.just("payload"), fz.payloads()),
    )


def check_validator(case: tuple[str, Any]) -> None:
    """Each validator returns a clean value or raises a McastlabError; what it accepts, backends can store."""
    kind, value = case
    what = f"validate_{kind}({safe_repr(value)})"
    if kind == "identity":
        ok, out = call(lambda: validate_identity(value), what)
        if ok:
            assert isinstance(out, str) and 0 < len(out) <= 256 and out.isprintable() and " " not in out
            out.encode()  # every backend encodes names as UTF-8
    elif kind == "metadata":
        ok, out = call(lambda: validate_metadata(value, max_bytes=64 * 1024), what)
        if ok:
            copy, size = out
            try:  # what validation accepts must be storable as JSON (SQL and Redis backends do exactly this)
                text = json.dumps(copy, separators=(",", ":"), allow_nan=False)
            except (ValueError, TypeError) as exc:
                raise PropertyError(f"{what} accepted metadata that JSON cannot encode: {exc!r}") from exc
            assert json.loads(text) == copy, f"{what}: the accepted copy does not survive JSON"
            assert type(size) is int and size > 0, f"{what}: size {size!r}"
    elif kind == "ttl":
        ok, out = call(lambda: validate_ttl(value), what)
        if ok:
            assert type(out) is float and 0 < out <= 1e9, f"{what} returned {out!r}"
    else:
        ok, out = call(lambda: validate_payload(value, max_bytes=1024), what)
        if ok:
            assert type(out) is bytes and len(out) <= 1024, f"{what} returned {type(out).__name__}"


# ----------------------------------------------------------------------------- filters

_LIMITS = st.sampled_from(
    ((5, 20), (None, None), (1, 1), (100, 10_000), (0, 0), (-1, 5), (True, 3), (2.5, None), ("5", 20))
)


def filter_cases() -> st.SearchStrategy[tuple[Any, Any, list[Any]]]:
    from mcastlab.filters import strategies as fst

    return st.tuples(fz.filters(), _LIMITS, st.lists(fst.metadata_dicts(), max_size=3))


def check_filter(case: tuple[Any, Any, list[Any]]) -> None:
    """compile_filter returns a CompiledFilter or raises a McastlabError; what compiles, evaluates (to a
    bool, without raising), renders to text that compiles back to the same filter, and translates to SQL."""
    raw, (max_depth, max_clauses), metas = case
    what = f"compile_filter({safe_repr(raw)}, max_depth={max_depth!r}, max_clauses={max_clauses!r})"

    def build() -> CompiledFilter:
        return compile_filter(fz.resolve_filter(raw), max_depth=max_depth, max_clauses=max_clauses)

    ok, cf = call(build, what)
    if not ok:
        return
    assert isinstance(cf, CompiledFilter)
    for md in metas:
        got = call(lambda md=md: cf.predicate(md), f"{what}.predicate({safe_repr(md)})")[1]
        assert type(got) is bool, f"{what}.predicate returned {got!r}"
    ok, again = call(
        lambda: compile_filter(cf.text, max_depth=None, max_clauses=None),
        f"compile_filter(text of {what}: {safe_repr(cf.text)})",
    )
    assert ok, f"the canonical text {safe_repr(cf.text)} of {what} does not compile: {again}"
    assert again.filter == cf.filter, f"{safe_repr(cf.text)} parses back to {safe_repr(again.filter)}"
    for dialect in ("sqlite", "postgres"):
        call(lambda d=dialect: to_sql(cf.filter, dialect=d), f"to_sql({what}, dialect={dialect!r})")


# ----------------------------------------------------------------------------- configs


def config_cases() -> st.SearchStrategy[tuple[tuple[str, Any], str]]:
    return st.tuples(fz.config_inputs(), st.sampled_from(("memory", "sqlite")))


def make_config(how: str, data: Any) -> Config:
    if how == "kwargs":
        return Config(**data)
    if how == "dict":
        return Config.from_dict(data, source="fuzz")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
        return Config.from_yaml(path)


def check_config(case: tuple[tuple[str, Any], str]) -> None:
    """A Config is built or ConfigError raised; a Config that is built works: a coordinator on it registers,
    enumerates, multicasts and sweeps (or refuses with a typed error)."""
    (how, data), registry = case
    what = f"Config via {how}({safe_repr(data)})"
    ok, cfg = call(lambda: make_config(how, data), what)
    if not ok:
        assert isinstance(cfg, ConfigError), f"{what} raised {type(cfg).__name__}, not a ConfigError"
        return
    assert Config.from_dict(cfg.to_dict()) == cfg, f"{what}: to_dict() does not load back"
    rt = SimPyRuntime(simpy.Environment())
    reg = MemoryRegistry() if registry == "memory" else SqliteRegistry(":memory:")

    async def use() -> None:
        async with Coordinator(cfg, registry=reg, runtime=rt, name="fuzz") as c:
            steps = (
                lambda: c.register("a", {"status": "online"}),
                lambda: c.register("b", {}, ttl=1),
                lambda: rt.sleep(2),
                lambda: c.enumerate('status == "online"'),
                c.count,
                lambda: c.multicast(None, b"x"),
                lambda: c.multicast(None, b"x", mode="ack"),
                c.sweep,
                lambda: c.unregister("a"),
            )
            for i, step in enumerate(steps):
                try:
                    await step()
                except McastlabError as exc:
                    check_error(exc, f"step {i} of a coordinator on {what}")

    call(lambda: rt.run(use()), f"a coordinator on {what} with the {registry} registry")


__all__ = [
    "check_config", "check_filter", "check_validator", "config_cases", "filter_cases", "make_config",
    "validator_cases",
]
