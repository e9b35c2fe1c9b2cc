"""The discrete Laplace (two-sided geometric) mechanism, and the per-key budget ledger."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medley.privacy import dp

DRAWS = 200_000


@pytest.mark.parametrize(("epsilon", "sensitivity", "alpha"), [
    (1.0, 1, math.exp(-1.0)),
    (0.5, 1, math.exp(-0.5)),
    (1.0, 7, math.exp(-1 / 7)),
    (math.log(2), 1, 0.5),
    (math.inf, 1, 0.0),
])
def test_alpha_is_exp_of_minus_epsilon_over_sensitivity(epsilon, sensitivity, alpha):
    assert dp.alpha(epsilon, sensitivity) == pytest.approx(alpha)


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0, 3.0])
def test_the_pmf_sums_to_one_and_each_step_away_costs_a_factor_of_e_to_the_epsilon(epsilon):
    total = sum(dp.pmf(x, epsilon) for x in range(-2000, 2001))
    assert total == pytest.approx(1.0, abs=1e-9)
    for x in (0, 1, 5, -3):
        # the privacy guarantee itself: neighbouring counts are at most e^ε apart in odds
        assert dp.pmf(x, epsilon) / dp.pmf(x + 1 if x >= 0 else x - 1, epsilon) == (
            pytest.approx(math.exp(epsilon)))


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(0.2, 1), (1.0, 1), (1.0, 7), (4.0, 1)])
def test_many_draws_have_mean_zero_and_the_predicted_spread(epsilon, sensitivity):
    rng = np.random.default_rng(7)
    x = dp.discrete_laplace(epsilon, DRAWS, rng, sensitivity)
    var = dp.variance(epsilon, sensitivity)
    assert x.dtype == np.int64
    assert abs(x.mean()) < 5 * math.sqrt(var / DRAWS)  # five standard errors
    assert x.var() == pytest.approx(var, rel=0.03)
    # mean absolute deviation of a two-sided geometric: 2a/(1-a²)
    a = dp.alpha(epsilon, sensitivity)
    assert np.abs(x).mean() == pytest.approx(2 * a / (1 - a * a), rel=0.03)


def test_draws_follow_the_pmf_value_by_value():
    rng = np.random.default_rng(11)
    x = dp.discrete_laplace(1.0, DRAWS, rng)
    for v in range(-4, 5):
        expected = dp.pmf(v, 1.0)
        got = float((x == v).mean())
        assert abs(got - expected) < 5 * math.sqrt(expected * (1 - expected) / DRAWS), v


@pytest.mark.parametrize("epsilon", [math.inf, 1e9, 1e4])
def test_an_infinite_or_huge_epsilon_gives_exact_counts(epsilon):
    rng = np.random.default_rng(3)
    assert not dp.discrete_laplace(epsilon, 10_000, rng).any()
    counts = {"view": 12, "like": 0, "share": 3}
    assert dp.release(counts, epsilon, rng) == counts


def test_a_release_splits_epsilon_over_its_counts_and_never_goes_negative():
    assert dp.split(1.0, 7) == pytest.approx(1 / 7)
    rng = np.random.default_rng(5)
    zeros = {f"t{k}": 0 for k in range(7)}
    runs = [dp.release(zeros, 0.7, rng) for _ in range(2000)]
    assert all(v >= 0 for r in runs for v in r.values())
    # each count got ε/7 = 0.1: with P(0) = (1-a)/(1+a) ~ 5%, about half the draws are > 0
    positive = np.mean([v > 0 for r in runs for v in r.values()])
    a = dp.alpha(0.1)
    assert positive == pytest.approx(a / (1 + a), abs=0.02)


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(0.0, 1), (-1.0, 1), (math.nan, 1),
                                                      (1.0, 0)])
def test_nonsense_parameters_are_refused(epsilon, sensitivity):
    with pytest.raises(ValueError):
        dp.alpha(epsilon, sensitivity)
    with pytest.raises(ValueError):
        dp.split(1.0, 0)
