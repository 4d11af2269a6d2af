"""Fuzzing simulated backends built straight from ``sim:`` sections: SimSpec.from_dict builds or raises
a ConfigError, and a coordinator on the backends it builds returns or raises a McastlabError on every
call (see :mod:`.sim_props`)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from .sim_props import check_sim, sim_cases


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=sim_cases())
def test_sim_specs_build_working_backends_or_raise_typed(case: Any) -> None:
    check_sim(case)
