"""Fuzzing the pure entry points: identity names, metadata, TTLs and payloads (validation), filters in
every form, and configs (kwargs, dicts, YAML files) - each call returns or raises a McastlabError, and
what is accepted works (see :mod:`.input_props`). ``scripts/fuzz.py`` runs the same properties longer."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from .input_props import (
    check_config,
    check_filter,
    check_validator,
    config_cases,
    filter_cases,
    validator_cases,
)


def fuzz(max_examples: int) -> settings:
    """Settings of a fuzz test: its share of the suite's few hundred cases, no deadline (cases vary)."""
    return settings(max_examples=max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(150)
@given(case=validator_cases())
def test_validators_return_or_raise_typed(case: Any) -> None:
    check_validator(case)


@fuzz(120)
@given(case=filter_cases())
def test_filters_compile_or_raise_typed(case: Any) -> None:
    check_filter(case)


@fuzz(80)
@given(case=config_cases())
def test_configs_build_and_work_or_raise_typed(case: Any) -> None:
    check_config(case)
