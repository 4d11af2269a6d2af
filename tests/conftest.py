"""Shared test settings: hypothesis profiles, live tests that may not skip in CI, and ``eventually``
(tests that wait for background work poll until a deadline instead of sleeping a fixed time)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Generator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


Condition = Callable[[], bool | Awaitable[bool]]


async def _eventually(condition: Condition, timeout: float = 10.0, poll: float = 0.01,
                      what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        await asyncio.sleep(poll)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(lambda: cond, timeout=10)``: poll a (sync or async) condition until it holds;
    fails the test at the deadline. For background work (sweeps, reconnects) whose timing varies."""
    return _eventually


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    """In CI a live test must run: a skip there (a missing server binary, say) would hide a failure."""
    report = yield
    if (os.environ.get("CI") and isinstance(report, pytest.TestReport) and report.skipped
            and item.get_closest_marker("live") is not None):
        report.outcome = "failed"
        why = "live test skipped in CI; scripts/test.sh must install its servers"
        report.longrepr = f"{why}: {report.longrepr}"
    return report
