"""Shared test settings: hypothesis profiles, and live tests that may not skip in CI."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Generator[object, None, None]:
    """A Redis 7 Cluster (3 masters + 3 replicas) shared by the session's non-destructive cluster tests
    (they isolate themselves by key prefix; tests that kill nodes start their own cluster)."""
    from mcastlab import servers
    from mcastlab.errors import ServerError

    try:
        cluster = servers.start_redis_cluster(3, 1)
    except ServerError as exc:
        if "not found" in str(exc):
            pytest.skip(f"redis-server not available: {exc}")
        raise
    yield cluster
    cluster.stop()
