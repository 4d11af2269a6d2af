"""Run the fuzz properties of ``tests/fuzz`` for many cases with a fixed seed: a table, exit 1 on failure.

    .venv/bin/python scripts/fuzz.py --cases 10000            # split across the targets by weight
    .venv/bin/python scripts/fuzz.py --cases 500 --only filters --seed 7 --show 3

Each target is a hypothesis strategy and the same ``check`` function the pytest suite calls
(``tests/fuzz/*_props.py``). Unlike a pytest run, a failing case does not stop its target: every case is
run, each failure is grouped by its exception and the mcastlab line it came from, and the first example
of each group is printed. A case that runs longer than ``--case-timeout`` seconds counts as a failure
(a hang in virtual time is a bug too). Generation only (no shrinking), no example database: the same
seed draws the same cases.
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz import input_props, registry_props, scenario_props, sim_props  # noqa: E402
from tests.fuzz.oracle import safe_repr  # noqa: E402

# name -> (strategy factory, property, share of the cases)
TARGETS: dict[str, tuple[Callable[[], st.SearchStrategy[Any]], Callable[[Any], None], float]] = {
    "validators": (input_props.validator_cases, input_props.check_validator, 0.15),
    "filters": (input_props.filter_cases, input_props.check_filter, 0.20),
    "configs": (input_props.config_cases, input_props.check_config, 0.10),
    "registry-ops": (registry_props.registry_cases, registry_props.check_registry_case, 0.20),
    "scenario-load": (scenario_props.load_cases, scenario_props.check_load, 0.20),
    "scenario-run": (scenario_props.run_cases, scenario_props.check_run, 0.10),
    "sim-backends": (sim_props.sim_cases, sim_props.check_sim, 0.05),
}


class CaseTimeoutError(BaseException):
    """A case ran past --case-timeout (a BaseException, so that no ``except Exception`` retry loop in the
    code under test can swallow it)."""


@dataclass
class Outcome:
    cases: int = 0
    failures: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    seconds: float = 0.0


def signature(exc: BaseException) -> tuple[str, str]:
    """Group failures by the escaping exception's type and the last mcastlab frame it passed through."""
    inner = exc.__cause__ or exc
    frames = traceback.extract_tb(inner.__traceback__)
    lib = [f for f in frames if f"{Path('mcastlab')}/" in f.filename and "/tests/" not in f.filename]
    where = f"{Path(lib[-1].filename).name}:{lib[-1].lineno}" if lib else "(test)"
    return f"{type(inner).__name__}", where


def run_target(name: str, n: int, seed_value: int, case_timeout: float) -> Outcome:
    make, check, _ = TARGETS[name]
    out = Outcome()

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise CaseTimeoutError(f"case ran longer than {case_timeout} s")

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @seed(seed_value)
    @given(make())
    def target(case: Any) -> None:
        out.cases += 1
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, case_timeout)
        try:
            check(case)
        except (Exception, CaseTimeoutError) as exc:
            key = signature(exc)
            out.failures[key] += 1
            if key not in out.examples:
                out.examples[key] = f"{safe_repr(str(exc), 700)}\n      case: {safe_repr(case, 500)}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    t0 = time.perf_counter()
    target()
    out.seconds = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="total cases, split across targets by weight")
    ap.add_argument("--seed", type=int, default=20_261_127)
    ap.add_argument("--only", action="append", choices=sorted(TARGETS), help="run only these targets")
    ap.add_argument("--case-timeout", type=float, default=30.0, help="seconds before a case counts as a hang")
    ap.add_argument("--show", type=int, default=1, help="examples printed per failure group (first only)")
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the sweeper and the runner log what they survive; the table says it
    names = args.only or list(TARGETS)
    weights = {n: TARGETS[n][2] for n in names}
    total_w = sum(weights.values())
    budget = {n: max(1, round(args.cases * w / total_w)) for n, w in weights.items()}
    budget[names[0]] += args.cases - sum(budget.values())
    results: dict[str, Outcome] = {}
    for name in names:
        results[name] = run_target(name, budget[name], args.seed, args.case_timeout)
        r = results[name]
        print(f"  {name}: {r.cases} cases, {sum(r.failures.values())} failing, {r.seconds:.1f} s", flush=True)
    print()
    print(f"{'target':<16}{'cases':>8}{'failing':>9}{'groups':>8}{'seconds':>9}")
    for name, r in results.items():
        print(f"{name:<16}{r.cases:>8}{sum(r.failures.values()):>9}{len(r.failures):>8}{r.seconds:>9.1f}")
    cases = sum(r.cases for r in results.values())
    failing = sum(sum(r.failures.values()) for r in results.values())
    groups = sum(len(r.failures) for r in results.values())
    print(f"{'total':<16}{cases:>8}{failing:>9}{groups:>8}{sum(r.seconds for r in results.values()):>9.1f}")
    for name, r in results.items():
        for key, count in r.failures.most_common():
            print(f"\n[{name}] {count} x {key[0]} at {key[1]}\n      {r.examples[key]}")
    print(f"\nseed {args.seed}: {cases} cases run, {failing} failing ({groups} distinct failures)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
