"""Fuzzing coordinator calls on the memory, SQLite and simulated registries: every call returns or
raises a McastlabError, and a refused register/heartbeat/unregister/multicast/ack/replay leaves the
registry (enumerate, count, get, the durable journal) exactly as it was (see :mod:`.registry_props`)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from .registry_props import check_registry_case, registry_cases


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=registry_cases())
def test_calls_return_or_refuse_without_changing_anything(case: Any) -> None:
    check_registry_case(case)
