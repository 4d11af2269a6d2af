"""Random filters over random registries: every registry returns exactly what the reference predicate
(and the memory reference registry) returns — including identities that expired but were not swept —
from enumerate, count and the ids-only query of a multicast."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryMessaging, MemoryRegistry
from mcastlab.filters import And, Compare, Contains, Exists, Filter, In, Not, Or, StartsWith, Version
from mcastlab.runtime import AsyncioRuntime

from .conftest import registry_for

KEYS = st.sampled_from(["status", "g", "v", "flag", "tags", "a:b", "fw", "ü"])
COMMON = st.sampled_from(["online", "offline", "idle", 0, 1, 2, 1.0, True, "1"])  # frequent: sets overlap
SCALARS = st.one_of(
    COMMON, COMMON,
    st.sampled_from(["x:y", "", "1.2.10", "1.2.9", "*", "n:1"]),
    st.integers(-2, 3), st.sampled_from([2.5, -0.0, 1e20]), st.booleans(), st.none(),
)
VALUES = st.one_of(SCALARS, st.lists(st.sampled_from(["red", 1, True, None]), max_size=2),
                   st.fixed_dictionaries({"m": SCALARS}))
METADATA = st.fixed_dictionaries(
    {"status": st.sampled_from(["online", "offline", "idle"]),
     "g": st.sampled_from([0, 1, 2, 1.0, True, "1"])},
    optional={"v": VALUES, "flag": st.booleans(), "tags": VALUES, "a:b": COMMON, "ü": VALUES,
              "fw": st.sampled_from(["1.2.10", "1.2.9", "1.10", "x"])},
)
NAMES = st.text(alphabet="ab:.*>{}%ü日-_", min_size=1, max_size=6)
POPULATIONS = st.dictionaries(NAMES, st.tuples(METADATA, st.booleans()), min_size=3, max_size=20)
EQ_KEYS = st.sampled_from(["status", "g", "a:b"])
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
LEAVES = st.one_of(
    # what index plans are made of (Term / AnyOf / AllOf), weighted up
    st.builds(Compare, EQ_KEYS, st.just("=="), COMMON),
    st.builds(In, EQ_KEYS, st.lists(COMMON, min_size=2, max_size=3).map(tuple)),
    st.builds(In, st.just("status"), st.lists(st.sampled_from(["online", "offline", "idle"]), min_size=2,
                                               max_size=3, unique=True).map(tuple)),
    st.builds(Compare, KEYS, OPS, SCALARS),
    st.builds(Compare, st.just("fw"), OPS, st.sampled_from([Version("1.2.10"), Version("1.2")])),
    st.builds(In, KEYS, st.lists(SCALARS, max_size=3).map(tuple), st.booleans()),
    st.builds(Exists, KEYS),
    st.builds(StartsWith, KEYS, st.sampled_from(["o", "x:", "", "1."])),
    st.builds(Contains, KEYS, SCALARS),
)
FILTERS: st.SearchStrategy[Filter] = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda cs: And(tuple(cs))),
        st.lists(children, min_size=2, max_size=3).map(lambda cs: Or(tuple(cs))),
        children.map(Not),
    ),
    max_leaves=6,
)
_seq = itertools.count()


def _registry(kind: str, request: pytest.FixtureRequest) -> Any:
    return registry_for(kind, request, f"hyp{next(_seq)}")


async def _compare(registry: Any, population: dict[str, tuple[dict[str, Any], bool]],
                   filters: list[Filter]) -> None:
    t = [1000.0]
    config = Config(max_filter_depth=20, max_clauses=100, max_identities=None, sweep_interval=3600)
    runtime = AsyncioRuntime(lambda: t[0])
    coords = [Coordinator(config, registry=reg, messaging=MemoryMessaging(), runtime=runtime)
              for reg in (registry, MemoryRegistry())]
    async with coords[0] as c, coords[1] as ref:
        for name, (md, short) in population.items():
            for co in (c, ref):
                await co.register(name, md, ttl=5 if short else 50)
        t[0] += 5  # the short-lived ones are dead now, and nobody swept them
        live = {name: md for name, (md, short) in population.items() if not short}
        for flt in filters:
            cf = c.compile(flt)
            expected = sorted(name for name, md in live.items() if cf.predicate(md))
            got = sorted(i.id for i in await c.enumerate(cf))
            assert got == expected, f"{flt} -> {got}, expected {expected}"
            assert sorted(i.id for i in await ref.enumerate(cf)) == expected
            assert await c.count(cf) == len(expected)
            # what a multicast targets: ids only (an exact plan reads no metadata)
            assert sorted(await c.registry.query_ids(cf, now=t[0])) == expected
            assert sorted(await ref.registry.query_ids(cf, now=t[0])) == expected
        for name in population:
            await c.unregister(name)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(population=POPULATIONS, filters=st.lists(FILTERS, min_size=1, max_size=4))
def test_random_filters_match_the_reference(registry_kind: str, request: pytest.FixtureRequest,
                                            population: dict[str, tuple[dict[str, Any], bool]],
                                            filters: list[Filter]) -> None:
    asyncio.run(_compare(_registry(registry_kind, request), population, filters))
