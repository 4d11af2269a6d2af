"""Latency models: sampling sanity with fixed seeds, per-item costs, parsing errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mcastlab.errors import ConfigError
from mcastlab.sim import Constant, Empirical, Exponential, LogNormal, Sampler, fit_lognormal, parse_model


def test_lognormal_median_and_spread() -> None:
    m = parse_model({"kind": "lognormal", "median": 0.0002, "sigma": 0.3}, "x")
    s = Sampler(m, np.random.default_rng(3))
    draws = np.array([s() for _ in range(20_000)])
    assert np.median(draws) == pytest.approx(0.0002, rel=0.02)
    assert np.std(np.log(draws)) == pytest.approx(0.3, rel=0.03)


def test_empirical_resamples_only_measured_values() -> None:
    data = [0.001, 0.002, 0.003, 0.010]
    s = Sampler(
        parse_model({"kind": "empirical", "samples": data, "scale": 2.0}, "x"), np.random.default_rng(4)
    )
    draws = {s() for _ in range(2000)}
    assert draws == {2 * v for v in data}


def test_exponential_mean_constant_and_per_item() -> None:
    s = Sampler(Exponential(0.5), np.random.default_rng(5))
    assert np.mean([s() for _ in range(40_000)]) == pytest.approx(0.5, rel=0.02)
    c = Sampler(parse_model({"kind": "constant", "value": 0.001, "per_item": 1e-6}, "x"), None)
    assert c() == 0.001
    assert c(1000) == pytest.approx(0.002)
    assert parse_model(0.25, "x") == Constant(0.25)


def test_same_seed_same_stream_different_seed_differs() -> None:
    m = LogNormal(0.001, 0.5)
    a = [Sampler(m, np.random.default_rng(9))() for _ in range(3)]
    b = Sampler(m, np.random.default_rng(9))
    b2 = Sampler(m, np.random.default_rng(9))
    assert [b() for _ in range(1000)] == [b2() for _ in range(1000)]
    c = Sampler(m, np.random.default_rng(10))
    assert a[0] != c()


def test_fit_lognormal_recovers_parameters() -> None:
    draws = np.random.default_rng(1).lognormal(math.log(0.003), 0.4, 50_000)
    fit = fit_lognormal(draws)
    assert fit.median_s == pytest.approx(0.003, rel=0.02)
    assert fit.sigma == pytest.approx(0.4, rel=0.05)
    assert Empirical((1.0, 2.0, 3.0)).median() == 2.0


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({"kind": "lognormal", "median": 0.001}, "x.sigma"),
        ({"kind": "lognormal", "median": -1, "sigma": 0.2}, "x.median"),
        ({"kind": "gaussian", "mean": 1}, "x.kind"),
        ({"kind": "constant", "value": 1, "scale": 2}, "x.scale"),
        ({"kind": "empirical", "samples": []}, "x.samples"),
        ("fast", "x"),
    ],
)
def test_bad_models_name_the_key(value: object, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_model(value, "x")
    assert err.value.key == key
    assert key in str(err.value)
