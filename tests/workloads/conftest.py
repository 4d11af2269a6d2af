"""Fixtures of the workload tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    """A redis-server and a nats-server for the module (URLs by kind); skipped if not installed."""
    from mcastlab import servers as srv
    from mcastlab.errors import ServerError

    try:
        srv.find_binary("redis")
        srv.find_binary("nats")
    except ServerError as exc:
        pytest.skip(str(exc))
    with srv.servers("redis", "nats") as started:
        yield {k: s.url for k, s in started.items()}
