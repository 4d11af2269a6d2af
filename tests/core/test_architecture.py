"""Guardrails of the architecture (docs/architecture.md): the core touches time and concurrency only through
its Runtime and never imports a runtime; state has one owner; backends declare their capabilities and
receive the runtime one way; errors are typed; records are frozen; modules stay small."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "mcastlab"
ROOT = PKG.parent
CORE = [
    "coordinator.py", "identity.py", "config.py", "errors.py", "policy.py", "results.py", "metrics.py",
    "fanout.py", "sweeper.py", "population.py", "_guard.py", "_identity_side.py", "runtime/base.py",
    "backends/base.py", "backends/memory.py", "backends/sqlite_registry.py",
    "backends/sqlite_durability.py", "backends/_sql_common.py", "backends/_sql_index.py",
    *[str(p.relative_to(PKG)) for p in sorted((PKG / "filters").glob("*.py"))],
]
FORBIDDEN = {"asyncio", "simpy", "redis", "nats", "asyncpg", "time", "datetime", "random", "threading"}
MAX_LINES = 400


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def imported_full(path: Path) -> set[str]:
    """Dotted names of every module ``path`` imports (``from a.b import c`` gives a.b and a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_imports_no_runtime_io_or_clock(module: str) -> None:
    bad = imported_modules(PKG / module) & FORBIDDEN
    assert not bad, f"{module} imports {bad}: time and concurrency must go through the Runtime"


def test_filters_are_checked_too() -> None:
    assert any(m.startswith("filters/") for m in CORE)


def test_importing_the_coordinator_loads_no_runtime() -> None:
    """The Runtime seam holds at import time too: the core pulls in neither simpy nor asyncio."""
    code = ("import sys, mcastlab.coordinator; "
            "print(sorted(m for m in ('simpy', 'asyncio', 'redis', 'nats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_no_module_is_too_big() -> None:
    sizes = {p.relative_to(PKG): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    too_big = {str(k): v for k, v in sizes.items() if v > MAX_LINES}
    assert not too_big, f"split these modules by job (limit {MAX_LINES} lines): {too_big}"


def test_the_sweeper_and_fanout_do_not_know_the_coordinator() -> None:
    for module in ("sweeper.py", "fanout.py", "population.py", "_guard.py"):
        assert "mcastlab.coordinator" not in imported_full(PKG / module), f"{module} imports the coordinator"


@pytest.mark.parametrize("module", ["coordinator.py", "fanout.py", "sweeper.py", "_identity_side.py"])
def test_backends_are_never_probed(module: str) -> None:
    """Capabilities are declared (backends.base.Capabilities), not discovered with getattr/hasattr."""
    probes = ("getattr", "hasattr")
    calls = [n.func.id for n in ast.walk(ast.parse((PKG / module).read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in probes]
    assert not calls, f"{module} probes with {calls}"


def _backend_classes() -> list[type]:
    from mcastlab import backends as b
    from mcastlab.sim import SimMessaging, SimRegistry

    names = ["MemoryRegistry", "MemoryMessaging", "RedisRegistry", "NatsMessaging", "RedisPubSubMessaging",
             "SqliteRegistry", "PostgresRegistry", "SqliteDurability", "PostgresDurability"]
    return [getattr(b, n) for n in names] + [SimRegistry, SimMessaging]


def test_every_backend_declares_its_capabilities_and_opens_with_the_runtime() -> None:
    from mcastlab.backends.base import Capabilities, Durability, Messaging, Registry

    for proto in (Registry, Messaging, Durability):
        assert "runtime" in inspect.signature(proto.open).parameters, proto
    for cls in _backend_classes():
        assert "runtime" in inspect.signature(cls.open).parameters, f"{cls.__name__}.open takes no runtime"
        assert "runtime" not in inspect.signature(cls.__init__).parameters, (
            f"{cls.__name__} takes the runtime in its constructor: backends receive it at open(runtime)")
        if cls.__name__ == "SimMessaging":  # declared per instance (its spec decides inline modes)
            continue
        if "Durability" not in cls.__name__:
            assert isinstance(getattr(cls, "capabilities", None), Capabilities), cls


def test_internal_components_take_the_runtime_in_their_constructor() -> None:
    from mcastlab.fanout import FanOut
    from mcastlab.sweeper import Sweeper

    for cls in (FanOut, Sweeper):
        assert "runtime" in inspect.signature(cls.__init__).parameters, cls


_BUILTIN_EXCEPTIONS = {n for n, v in vars(builtins).items()
                       if isinstance(v, type) and issubclass(v, BaseException)}
_ALLOWED = {"SystemExit", "KeyboardInterrupt", "StopIteration", "StopAsyncIteration"}


def test_every_raise_is_typed() -> None:
    """mcastlab raises its own errors (mcastlab.errors), never a bare ValueError or RuntimeError (a module
    ``__getattr__`` raises AttributeError and a sequence's ``__getitem__`` IndexError: Python's protocols)."""
    bad = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        protocol = {id(n) for f in ast.walk(tree)
                    if isinstance(f, ast.FunctionDef) and f.name in ("__getattr__", "__getitem__")
                    for n in ast.walk(f)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None or id(node) in protocol:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in _BUILTIN_EXCEPTIONS - _ALLOWED:
                bad.append(f"{path.relative_to(PKG)}:{node.lineno} raises {exc.id}")
    assert not bad, bad


def test_records_are_frozen() -> None:
    from mcastlab.backends.base import Capabilities, DurableRecord, ExpiredIdentity
    from mcastlab.fanout import FanOutOutcome
    from mcastlab.results import ExpirationEvent, MulticastResult, OpEvent

    for cls in (Capabilities, DurableRecord, ExpiredIdentity, FanOutOutcome, ExpirationEvent,
                MulticastResult, OpEvent):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]


def test_the_design_is_in_the_repository() -> None:
    """The package and tests cite the project's own design document, never one outside the repository."""
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
    outside = ("DESIGN.md", "BASELINES.md", "STYLE.md", "shared/")
    bad = [str(p.relative_to(ROOT)) for d in ("mcastlab", "tests", "benchmarks", "scripts")
           for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in (".py", ".sh", ".md")
           and p.name != "test_architecture.py" and any(s in p.read_text(errors="ignore") for s in outside)]
    assert not bad, f"these cite design documents outside the repository: {bad}"


def test_package_ships_py_typed() -> None:
    assert (PKG / "py.typed").exists()
