"""Filter evaluation cost: ns per predicate call, beside same-run Python baselines.

Rows: the compiled predicate for a 3-equality dict filter (matching and failing on the first key),
a hand-unrolled closure of the same 3 equalities (the floor), a generic ``all()`` loop over the
pairs, and a complex expression (or / in / not / version / dotted path / startswith).
Also the one-off costs: parse, compile (uncached) and a cached compile_filter call.
Run: ``python benchmarks/bench_filters.py [--quick]``. Machines here are shared: read the ratios.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

from mcastlab.filters import compile_filter, parse
from mcastlab.filters._codegen import build_predicate
from mcastlab.filters._parser import _Parser

DICT_FILTER = {"status": "online", "tier": "premium", "region": "us-west"}
COMPLEX = (
    '(status == "online" or status == "idle") and region in ["us-west", "us-east", "eu-central"] '
    'and firmware_version < v"1.2.10" and not (hw.model.startswith("pi") or tags contains "beta") '
    "and battery >= 20"
)
MATCH: dict[str, Any] = {
    "status": "online", "tier": "premium", "region": "us-west", "firmware_version": "1.2.9",
    "hw": {"model": "esp32"}, "tags": ["stable"], "battery": 80,
}
MISS_FIRST = {**MATCH, "status": "offline"}


def per_call(fn: Callable[[Any], Any], arg: Any, number: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` seconds per call."""
    return min(timeit.repeat(lambda: fn(arg), number=number, repeat=repeat)) / number


def per_call_loop(fn: Callable[[Any], Any], arg: Any, number: int, repeat: int = 5) -> float:
    """Seconds per call without the lambda's overhead (the loop runs in timeit's template)."""
    timer = timeit.Timer("f(m)", globals={"f": fn, "m": arg})
    return min(timer.repeat(number=number, repeat=repeat)) / number


def unrolled(m: dict[str, Any]) -> bool:
    return m.get("status") == "online" and m.get("tier") == "premium" and m.get("region") == "us-west"


PAIRS = tuple(DICT_FILTER.items())


def parse_uncached(text: str) -> Any:
    return _Parser(text).parse()


def generic_all(m: dict[str, Any]) -> bool:
    return all(m.get(k) == v for k, v in PAIRS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000

    dict_pred = compile_filter(DICT_FILTER).predicate
    complex_pred = compile_filter(COMPLEX).predicate
    assert dict_pred(MATCH) and complex_pred(MATCH) and not dict_pred(MISS_FIRST)

    rows = [
        ("3-equality dict filter, compiled (match)", per_call_loop(dict_pred, MATCH, n)),
        ("3-equality dict filter, compiled (first key fails)", per_call_loop(dict_pred, MISS_FIRST, n)),
        ("baseline: hand-unrolled closure (match)", per_call_loop(unrolled, MATCH, n)),
        ("baseline: generic all() loop (match)", per_call_loop(generic_all, MATCH, n)),
        ("complex expression, compiled (match)", per_call_loop(complex_pred, MATCH, n)),
        ("complex expression, compiled (first key fails)", per_call_loop(complex_pred, MISS_FIRST, n)),
    ]
    floor = rows[2][1]
    print(f"{'predicate call':52s} {'ns/call':>8s} {'x unrolled':>10s}")
    for name, t in rows:
        print(f"{name:52s} {t * 1e9:8.1f} {t / floor:10.2f}")

    tree = parse(COMPLEX)
    m = max(n // 200, 500)
    once = [
        ("parse (complex: tokenizer + parser, uncached)", per_call(parse_uncached, COMPLEX, m)),
        ("build predicate (complex: codegen + compile())", per_call(build_predicate, tree, m)),
        ("compile_filter(text) when cached", per_call(compile_filter, COMPLEX, m * 10)),
    ]
    print()
    print(f"{'one-off cost':52s} {'µs':>8s}")
    for name, t in once:
        print(f"{name:52s} {t * 1e6:8.2f}")


if __name__ == "__main__":
    main()
