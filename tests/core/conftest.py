"""Fixtures for core tests: ``rt`` is each runtime in turn, ``sim`` is SimPy only."""

from __future__ import annotations

import pytest
import simpy

from mcastlab.runtime import AsyncioRuntime, Runtime, SimPyRuntime


@pytest.fixture(params=["asyncio", "simpy"])
def rt(request: pytest.FixtureRequest) -> Runtime:
    if request.param == "asyncio":
        return AsyncioRuntime()
    return SimPyRuntime(simpy.Environment())


@pytest.fixture
def sim() -> SimPyRuntime:
    return SimPyRuntime(simpy.Environment())
