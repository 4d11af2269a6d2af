"""The spec's in-memory benchmark table, reproduced on the embedded backends.

Each row prints our figure, a same-run baseline (the naive scan-everything registry plugged into the
same coordinator, or a bare Python loop for filter evaluation) and the Go reference's published figure.
Run: ``python benchmarks/bench_core.py [--quick]``. Timing lives here, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive import NaiveRegistry

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryRegistry
from mcastlab.filters import compile_filter

GO = {  # the reference implementation's published in-memory figures (seconds per op)
    "register": 517e-9, "register with TTL": 563e-9, "enumerate 1000, no filter": 9.7e-6,
    "enumerate 1000, filter (500 match)": 43.7e-6, "multicast to 10": 5.1e-6, "multicast to 100": 51.3e-6,
    "multicast to 1000": 528e-6, "unregister": 245e-9, "filter evaluation": 29.6e-9,
}
INDEXED = ("status", "location")
CFG = Config(max_identities=None, default_ttl=None, sweep_interval=3600)


def fmt(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def md(i: int) -> dict[str, Any]:
    return {"status": "online" if i % 2 else "offline", "group": f"g{i % 10}", "firmware_version": "1.2.3",
            "location": f"warehouse-{i % 4}"}


async def per_op(fn: Callable[[int], Awaitable[Any]], n: int, repeat: int = 5) -> float:
    """Median over ``repeat`` runs of the mean seconds per call of ``fn(i)`` for i in range(n)."""
    runs = []
    for r in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            await fn(i + r * n)
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs)


async def filled(registry: Any, n: int) -> Coordinator:
    c = Coordinator(CFG, registry=registry)
    await c.open()
    for i in range(n):
        await c.register(f"dev-{i}", md(i))
    return c


async def bench(quick: bool) -> list[tuple[str, float, float | None, str]]:
    n = 20_000 if quick else 100_000
    rows: list[tuple[str, float, float | None, str]] = []

    async def registering(reg: Any, ttl: float | None) -> float:
        c = Coordinator(CFG, registry=reg)
        await c.open()
        meta = md(1)
        t = await per_op(lambda i: c.register(f"dev-{i}", meta, ttl), n // 5)
        await c.close()
        return t

    for label, ttl in (("register", None), ("register with TTL", 300.0)):
        # two fields indexed, as after a workload's first filtered lookups on status and location
        indexed = MemoryRegistry(indexes=INDEXED)
        rows.append((label, await registering(indexed, ttl), await registering(NaiveRegistry(), ttl),
                     "naive registry"))

    for label, flt, size in (("enumerate 1000, no filter", None, 1000),
                             ("enumerate 1000, filter (500 match)", {"status": "online"}, 1000),
                             ("enumerate 1000 of 10000, equality filter", {"group": "g3"}, 10_000)):
        ours = await filled(MemoryRegistry(), size)
        base = await filled(NaiveRegistry(), size)
        assert len(await ours.enumerate(flt)) == len(await base.enumerate(flt))
        reps = 50 if size > 1000 else 300
        rows.append((label, await per_op(lambda _i, c=ours, f=flt: c.enumerate(f), reps),
                     await per_op(lambda _i, c=base, f=flt: c.enumerate(f), reps), "naive registry"))

    for k in (10, 100, 1000):
        ours = await filled(MemoryRegistry(), 10_000)
        base = await filled(NaiveRegistry(), 10_000)
        flt = {"group": "g1"} if k == 1000 else 'group == "g1" and location == "warehouse-1" and ' \
            'status == "online"'
        if k != 1000:
            ids = [f"dev-{i}" for i in range(k)]
            flt = f"tag in {ids!r}".replace("'", '"')
            for c in (ours, base):
                for i in range(k):
                    await c.register(f"dev-{i}", {**md(i), "tag": f"dev-{i}"})
        assert (await ours.multicast(flt, b"x")).targeted == k
        rows.append((f"multicast to {k}", await per_op(lambda _i, c=ours, f=flt: c.multicast(f, b"cmd"), 50),
                     await per_op(lambda _i, c=base, f=flt: c.multicast(f, b"cmd"), 50), "naive registry"))

    for label, reg in (("unregister", MemoryRegistry()),):
        c = await filled(reg, n // 5 * 5)
        nc = await filled(NaiveRegistry(), n // 5 * 5)
        rows.append((label, await per_op(lambda i, c=c: c.unregister(f"dev-{i}"), n // 5),
                     await per_op(lambda i, c=nc: c.unregister(f"dev-{i}"), n // 5), "naive registry"))

    cf = compile_filter({"status": "online", "location": "warehouse-1", "group": "g1"})
    meta = {"status": "online", "location": "warehouse-1", "group": "g1", "firmware_version": "1.2.3"}
    pred = cf.predicate
    m = 1_000_000 if not quick else 200_000
    t0 = time.perf_counter()
    for _ in range(m):
        pred(meta)
    ours_f = (time.perf_counter() - t0) / m

    want = {"status": "online", "location": "warehouse-1", "group": "g1"}

    def generic(x: dict[str, Any]) -> bool:
        return all(x.get(k) == v for k, v in want.items())

    t0 = time.perf_counter()
    for _ in range(m):
        generic(meta)
    rows.append(("filter evaluation (3 equalities)", ours_f, (time.perf_counter() - t0) / m,
                 "generic all() loop"))
    complex_cf = compile_filter('status == "online" and (location in ["warehouse-1", "warehouse-2"] or '
                                'not exists(retired)) and firmware_version < v"1.10.0"')
    t0 = time.perf_counter()
    for _ in range(m):
        complex_cf.predicate(meta)
    rows.append(("filter evaluation (complex)", (time.perf_counter() - t0) / m, None, ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke)")
    args = ap.parse_args(argv)
    rows = asyncio.run(bench(args.quick))
    print(f"{'operation':42} {'mcastlab':>10} {'baseline':>10} {'ratio':>8}  {'Go ref':>9}  baseline is")
    for label, ours, base, what in rows:
        ratio = f"{base / ours:6.1f}x" if base else ""
        go = GO.get(label.removesuffix(" (3 equalities)"))
        go_s = fmt(go) if go else ""
        print(f"{label:42} {fmt(ours):>10} {fmt(base) if base else '':>10} {ratio:>8}  {go_s:>9}  {what}")
    reg = next(r for r in rows if r[0] == "register")
    enum = next(r for r in rows if r[0].startswith("enumerate 1000 of 10000"))
    filt = next(r for r in rows if r[0] == "filter evaluation (3 equalities)")
    print()
    print(f"register throughput: {1 / reg[1]:,.0f} ops/s (goal >= 150,000; 4 metadata fields, "
          f"{len(INDEXED)} of them indexed)")
    print(f"enumerate 1,000 of 10,000 by equality: {enum[2] / enum[1]:.1f}x faster than the naive scan "
          "(goal >= 10x)")
    print(f"filter evaluation: {filt[1] * 1e9:.0f} ns (goal < 1 µs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
