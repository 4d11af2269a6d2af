"""Benchmark: enumerate 1,000 of 100,000 identities by an indexed filter, vs the same query forced to a
sequential scan, in PostgreSQL and SQLite, in the same run (goal: indexed >= 10x faster).

    .venv/bin/python benchmarks/bench_sql.py [--n 100000] [--repeat 21]

PostgreSQL is started on a free loopback port by ``mcastlab.servers`` and stopped afterwards. The
sequential scan runs the *same SQL*: in PostgreSQL through a second registry on the same table whose
sessions have ``enable_indexscan``/``enable_bitmapscan`` off; in SQLite with ``NOT INDEXED``. Two
timings per query: ``query()`` end to end (SQL, fetch, decode into 1,000 Identity objects - a fixed
~2 ms of Python on this machine that both plans pay), and the bare SQL (rows fetched, not decoded).
Medians are reported; the four variants run interleaved, round by round.
This machine is small and shared: compare the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcastlab import servers
from mcastlab.backends import PostgresRegistry, SqliteRegistry
from mcastlab.backends._sql_common import make_identities
from mcastlab.filters import CompiledFilter, compile_filter
from mcastlab.identity import Identity

GROUPS = 100  # 100,000 identities / 100 groups = 1,000 per group
FILTERS = {"equality": {"group": "g42"}, "nested": 'hw.model == "m42"'}
NO_INDEX = {"enable_indexscan": "off", "enable_bitmapscan": "off", "enable_indexonlyscan": "off"}


def population(n: int) -> list[Identity]:
    """``n`` identities; each filter above matches exactly n / GROUPS of them."""
    return [Identity(f"dev-{i:07d}", {"group": f"g{i % GROUPS}", "status": "online" if i % 3 else "offline",
                                      "fw": f"1.{i % 7}.{i % 11}", "hw": {"model": f"m{(i * 7) % GROUPS}"}},
                     0.0, 1e12) for i in range(n)]


async def timed(calls: dict[str, Callable[[], Awaitable[list[Any]]]], repeat: int
                ) -> tuple[dict[str, float], set[int]]:
    """Median seconds per call over ``repeat`` rounds (after a warm-up round), the calls interleaved
    within each round so that load from other processes hits them alike; and the result sizes."""
    sizes = {len(await call()) for call in calls.values()}
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeat):
        for key, call in calls.items():
            t0 = time.perf_counter()
            await call()
            times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(ts) for key, ts in times.items()}, sizes


def line(backend: str, name: str, calls: dict[str, Callable[[], Awaitable[list[Any]]]], repeat: int,
         plans: tuple[str, str]) -> Awaitable[str]:
    """One result row: query() and bare SQL, indexed and forced to a sequential scan, and speedups."""

    async def run() -> str:
        t, sizes = await timed(calls, repeat)
        assert len(sizes) == 1, f"indexed and sequential scans disagree: {sizes}"
        q, s = t["seq_query"] / t["idx_query"], t["seq_sql"] / t["idx_sql"]
        return (f"{backend:<9}{name:<9}{sizes.pop():>8}"
                f"{t['idx_query'] * 1e3:>10.2f}{t['seq_query'] * 1e3:>10.2f}{q:>8.1f}x"
                f"{t['idx_sql'] * 1e3:>10.2f}{t['seq_sql'] * 1e3:>10.2f}{s:>8.1f}x"
                f"   {plans[0]} | {plans[1]}")

    return run()


HEADER = (f"{'backend':<9}{'filter':<9}{'matched':>8}{'query() ms':>20}{'speedup':>9}{'bare SQL ms':>20}"
          f"{'speedup':>9}   plans (indexed | sequential)\n"
          f"{'':<26}{'indexed':>10}{'seqscan':>10}{'':>9}{'indexed':>10}{'seqscan':>10}")


async def bench_postgres(people: list[Identity], repeat: int) -> list[str]:
    server = servers.start_postgres()
    try:
        fast = PostgresRegistry(server.url, table="bench", pool_size=2)
        slow = PostgresRegistry(server.url, table="bench", pool_size=2, server_settings=NO_INDEX)
        await fast.open()
        await slow.open()
        t0 = time.perf_counter()
        await fast.bulk_load(people)
        print(f"postgres: loaded {len(people):,} identities in {time.perf_counter() - t0:.1f} s "
              f"(server {server.version})")
        out = []
        for name, flt in FILTERS.items():
            cf = compile_filter(flt)
            plans = (scan_line(await fast.explain(cf, now=1.0)), scan_line(await slow.explain(cf, now=1.0)))
            calls = {"idx_query": lambda cf=cf: fast.query(cf, now=1.0),
                     "seq_query": lambda cf=cf: slow.query(cf, now=1.0),
                     "idx_sql": pg_sql(fast, cf), "seq_sql": pg_sql(slow, cf)}
            out.append(await line("postgres", name, calls, repeat, plans))
        await fast.close()
        await slow.close()
        return out
    finally:
        server.stop()


def scan_line(plan: str) -> str:
    """The first plan node that scans the table (an index scan, a sequential or parallel scan)."""
    node = next(ln for ln in plan.splitlines() if "Scan on" in ln and "Heap" not in ln)
    return node.strip(" ->").split("  (")[0]


def pg_sql(reg: PostgresRegistry, cf: CompiledFilter) -> Callable[[], Awaitable[list[Any]]]:
    """The SQL of ``reg.query(cf)`` alone: rows fetched, not decoded into identities."""
    where, params, _ = reg.where(cf, 1.0)
    sql = f"SELECT id, doc, registered_at, expires_at FROM {reg._t} WHERE {where}"

    async def fetch() -> list[Any]:
        async with reg._pool.conn() as conn:
            return list(await conn.fetch(sql, *params))

    return fetch


def sqlite_sql(reg: SqliteRegistry, cf: CompiledFilter, *, indexed: bool, decode: bool
               ) -> Callable[[], Awaitable[list[Any]]]:
    """The SQL of ``reg.query(cf)`` (or the same with ``NOT INDEXED``), rows decoded or not."""
    where, params, _ = reg.where(cf, 1.0)
    hint = "" if indexed else " NOT INDEXED"
    sql = f"SELECT id, metadata, registered_at, expires_at FROM {reg._t}{hint} WHERE {where}"

    async def run() -> list[Any]:
        rows = reg._db().execute(sql, params).fetchall()
        return make_identities(rows) if decode else rows

    return run


async def bench_sqlite(people: list[Identity], repeat: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        reg = SqliteRegistry(str(Path(tmp) / "bench.db"), indexes=("group", "hw.model"))
        await reg.open()
        t0 = time.perf_counter()
        await reg.bulk_load(people)
        reg._db().execute("ANALYZE")
        print(f"sqlite:   loaded {len(people):,} identities in {time.perf_counter() - t0:.1f} s")
        out = []
        for name, flt in FILTERS.items():
            cf = compile_filter(flt)
            calls = {"idx_query": lambda cf=cf: reg.query(cf, now=1.0),
                     "seq_query": sqlite_sql(reg, cf, indexed=False, decode=True),
                     "idx_sql": sqlite_sql(reg, cf, indexed=True, decode=False),
                     "seq_sql": sqlite_sql(reg, cf, indexed=False, decode=False)}
            plans = (reg.explain(cf, now=1.0).splitlines()[0], "SCAN (NOT INDEXED)")
            out.append(await line("sqlite", name, calls, repeat, plans))
        await reg.close()
        return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="identities (default 100000)")
    parser.add_argument("--repeat", type=int, default=21, help="timed rounds (default 21)")
    args = parser.parse_args()
    people = population(args.n)
    rows = await bench_postgres(people, args.repeat) + await bench_sqlite(people, args.repeat)
    print(f"\nenumerate {args.n // GROUPS:,} of {args.n:,}; median of {args.repeat} runs")
    print(HEADER)
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
