"""Property: index-planned enumerate == compiled predicate == a brute-force reference, on random data.

The reference here is deliberately naive (plain Python over the identities) and independent of the
compiled predicate, so a bug in planning, in the index maintenance (upserts replacing metadata,
unregisters) or in the predicate shows up as a disagreement.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.filters import And, Compare, Exists, Filter, In, Not, Or, compile_filter
from mcastlab.runtime import SimPyRuntime

FIELDS = ["status", "tier", "n", "region"]
VALUES = st.sampled_from(["online", "offline", "a", "", 0, 1, 5, 5.0, 2.5, True, False, None])
metadata = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4)


def leaf() -> st.SearchStrategy[Filter]:
    field = st.sampled_from(FIELDS)
    return st.one_of(
        st.builds(Compare, field, st.sampled_from(["==", "!=", "<", ">="]), VALUES),
        st.builds(In, field, st.lists(VALUES, max_size=3).map(tuple), st.booleans()),
        st.builds(Exists, field),
    )


filters = st.recursive(
    leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda cs: And(tuple(cs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda cs: Or(tuple(cs))),
        inner.map(Not),
    ),
    max_leaves=6,
)


def same(a: Any, b: Any) -> bool:
    """Strict equality: bools only equal bools, numbers compare numerically, else by type and value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def ordered(a: Any, b: Any, op: str) -> bool:
    num = (isinstance(a, int | float) and not isinstance(a, bool) and isinstance(b, int | float)
           and not isinstance(b, bool))
    if not (num or (type(a) is str and type(b) is str)):
        return False
    return {"<": a < b, ">=": a >= b}[op]


def reference(f: Filter, md: dict[str, Any]) -> bool:
    if isinstance(f, And):
        return all(reference(c, md) for c in f.children)
    if isinstance(f, Or):
        return any(reference(c, md) for c in f.children)
    if isinstance(f, Not):
        return not reference(f.child, md)
    if isinstance(f, Exists):
        return f.field in md
    if f.field not in md:  # type: ignore[attr-defined]
        return False
    v = md[f.field]  # type: ignore[attr-defined]
    if isinstance(f, In):
        hit = any(same(v, x) for x in f.values)
        return not hit if f.negated else hit
    assert isinstance(f, Compare)
    if f.op == "==":
        return same(v, f.value)
    if f.op == "!=":
        return not same(v, f.value)
    return ordered(v, f.value, f.op)


@given(
    registrations=st.lists(st.tuples(st.integers(0, 15), metadata), max_size=30),
    removals=st.lists(st.integers(0, 15), max_size=5),
    flt=filters,
)
def test_planned_enumerate_matches_predicate_and_reference(
    registrations: list[tuple[int, dict[str, Any]]], removals: list[int], flt: Filter
) -> None:
    sim = SimPyRuntime()
    cf = compile_filter(flt, max_depth=None, max_clauses=None)

    async def body() -> tuple[list[str], dict[str, dict[str, Any]]]:
        async with Coordinator(Config(max_filter_depth=50, max_clauses=50), runtime=sim) as c:
            truth: dict[str, dict[str, Any]] = {}
            for i, md in registrations:  # re-registrations replace metadata (and index entries)
                await c.register(f"id-{i}", md)
                truth[f"id-{i}"] = md
            for i in removals:
                await c.unregister(f"id-{i}")
                truth.pop(f"id-{i}", None)
            return [x.id for x in await c.enumerate(cf)], truth

    got, truth = sim.run(body())
    by_reference = sorted(k for k, md in truth.items() if reference(flt, md))
    by_predicate = sorted(k for k, md in truth.items() if cf.predicate(md))
    assert sorted(got) == by_predicate == by_reference
    assert len(got) == len(set(got))
