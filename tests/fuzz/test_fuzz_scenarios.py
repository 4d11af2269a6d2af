"""Fuzzing scenarios: mutated shipped scenarios (dicts, overrides, YAML files) load or raise a
ScenarioError naming a key and a fix; small ones that load run in sim to completion or raise a typed
error (see :mod:`.scenario_props`)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from .scenario_props import check_load, check_run, load_cases, run_cases


def fuzz(max_examples: int) -> settings:
    """Settings of a fuzz test: its share of the suite's few hundred cases, no deadline (cases vary)."""
    return settings(max_examples=max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(150)
@given(case=load_cases())
def test_scenarios_load_or_name_the_key(case: Any) -> None:
    check_load(case)


@pytest.mark.timeout(120)
@fuzz(80)
@given(case=run_cases())
def test_small_scenarios_run_or_raise_typed(case: Any) -> None:
    check_run(case)
