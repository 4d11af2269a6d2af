"""Guardrails of DESIGN.md: the core never imports asyncio/simpy/redis/nats and never reads a clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "mcastlab"
CORE = [
    "coordinator.py", "identity.py", "config.py", "errors.py", "policy.py", "results.py", "metrics.py",
    "fanout.py", "sweeper.py", "runtime/base.py", "backends/base.py", "backends/memory.py",
    "backends/sqlite_registry.py", "backends/sqlite_durability.py", "backends/_sql_common.py",
    "backends/_sql_index.py",
    *[str(p.relative_to(PKG)) for p in sorted((PKG / "filters").glob("*.py"))],
]
FORBIDDEN = {"asyncio", "simpy", "redis", "nats", "asyncpg", "time", "datetime", "random", "threading"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_imports_no_runtime_io_or_clock(module: str) -> None:
    bad = imported_modules(PKG / module) & FORBIDDEN
    assert not bad, f"{module} imports {bad}: time and concurrency must go through the Runtime"


def test_filters_are_checked_too() -> None:
    assert any(m.startswith("filters/") for m in CORE)


def test_no_module_is_too_big() -> None:
    sizes = {p.relative_to(PKG): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    too_big = {str(k): v for k, v in sizes.items() if v > 500}
    assert not too_big, f"split these modules: {too_big}"


def test_package_ships_py_typed() -> None:
    assert (PKG / "py.typed").exists()
