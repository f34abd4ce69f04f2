"""Thompson cell weights against the closed form; the stratified lift against Simpson's paradox."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.bandit_allocation import (
    sequential_stratified_lift,
    stratified_lift,
    stratified_means,
    thompson_weights,
)
from experiments.fixed_horizon import absolute_lift
from experiments.sequential import SequentialLift
from experiments.statistics import SampleStats


def _binary(n: int, successes: int) -> SampleStats:
    return SampleStats(n, float(successes), float(successes))


def _posteriors(cells: dict[str, SampleStats]) -> dict[str, tuple[float, float]]:
    return stratified_means([cells])


def test_two_cell_weights_match_the_normal_closed_form() -> None:
    a, b = _binary(2000, 220), _binary(2000, 200)
    weights = thompson_weights(_posteriors({"a": a, "b": b}), seed=1, draws=400_000, floor=0.0)
    z = (a.mean - b.mean) / math.sqrt(a.variance / a.n + b.variance / b.n)
    assert weights["a"] == pytest.approx(stats.norm.cdf(z), abs=0.003)
    assert weights["a"] + weights["b"] == pytest.approx(1.0)


def test_weights_are_reproducible_floored_and_favour_the_best() -> None:
    cells = _posteriors({"a": _binary(500, 50), "b": _binary(500, 100), "c": _binary(500, 52)})
    first = thompson_weights(cells, seed=7, floor=0.05)
    assert first == thompson_weights(cells, seed=7, floor=0.05)
    assert first["b"] == pytest.approx(1 - 2 * 0.05, abs=1e-3)
    assert min(first.values()) >= 0.05 - 1e-12
    equal = thompson_weights(_posteriors({"a": _binary(500, 50), "b": _binary(500, 50)}), seed=3)
    assert equal["a"] == pytest.approx(0.5, abs=0.02)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        thompson_weights({}, seed=0)
    with pytest.raises(ValueError, match="at least 2 units"):
        stratified_means([{"a": _binary(1, 1), "b": _binary(10, 1)}])
    with pytest.raises(ValueError, match="floor"):
        thompson_weights({"a": (0.1, 0.01), "b": (0.1, 0.01)}, seed=0, floor=0.5)
    with pytest.raises(ValueError, match="finite"):
        thompson_weights({"a": (float("nan"), 0.01), "b": (0.1, 0.01)}, seed=0)
    with pytest.raises(ValueError, match="alpha"):
        stratified_lift([(_binary(10, 1), _binary(10, 2))], alpha=0.0)
    assert stratified_lift([(_binary(0, 0), _binary(10, 2))]).error == "EMPTY_CELL"


def test_one_period_is_the_welch_z_interval() -> None:
    control, treatment = _binary(3000, 300), _binary(2500, 290)
    pooled = absolute_lift(control, treatment, distribution="z")
    stratified = stratified_lift([(control, treatment)])
    assert stratified.estimate == pytest.approx(pooled.estimate, rel=1e-12)
    assert stratified.ci_low == pytest.approx(pooled.ci_low, rel=1e-12)
    assert stratified.p_value == pytest.approx(pooled.p_value, rel=1e-9)


def test_stratified_lift_is_unbiased_when_weights_and_baseline_move_together() -> None:
    """No true lift; the baseline doubles in period 2, when the treatment gets 90 % of the
    traffic. Pooling credits the treatment with the better week; stratifying does not."""
    rng = np.random.default_rng(2026)
    plan = [(0.10, 2000, 0.5), (0.20, 2000, 0.9)]  # (baseline, units, treatment share)
    pooled_estimates, covered = [], 0
    runs = 400
    for _ in range(runs):
        periods = []
        for base, units, share in plan:
            n_t = int(rng.binomial(units, share))
            n_c = units - n_t
            periods.append(
                (
                    _binary(n_c, int(rng.binomial(n_c, base))),
                    _binary(n_t, int(rng.binomial(n_t, base))),
                )
            )
        result = stratified_lift(periods)
        covered += result.ci_low <= 0.0 <= result.ci_high
        control = periods[0][0] + periods[1][0]
        treatment = periods[0][1] + periods[1][1]
        pooled_estimates.append(treatment.mean - control.mean)
    # Pooled: E[t] - E[c] = (0.1*1000 + 0.2*1800)/2800 - (0.1*1000 + 0.2*200)/1200 ~ +0.048.
    assert np.mean(pooled_estimates) > 0.04
    assert covered / runs >= 0.93


def test_stratified_means_weight_periods_by_their_units() -> None:
    early = {"a": _binary(100, 10), "b": _binary(300, 30)}  # 400 units
    late = {"a": _binary(500, 100), "b": _binary(100, 20)}  # 600 units
    means = stratified_means([early, late])
    assert means["a"][0] == pytest.approx(0.4 * 0.1 + 0.6 * 0.2)
    assert means["b"][0] == pytest.approx(0.4 * 0.1 + 0.6 * 0.2)  # same rates, same mean
    var_a = 0.4**2 * early["a"].variance / 100 + 0.6**2 * late["a"].variance / 500
    assert means["a"][1] == pytest.approx(math.sqrt(var_a))


def test_one_period_sequential_is_the_sequential_lift() -> None:
    control, treatment = _binary(3000, 300), _binary(2500, 290)
    sequential = SequentialLift(alpha=0.05, planned_n_per_cell=5000)
    expected = sequential.compute(control, treatment)
    got = sequential_stratified_lift([(control, treatment)], sequential)
    assert (got.ci_low, got.ci_high) == pytest.approx((expected.ci_low, expected.ci_high))
    assert got.p_value == pytest.approx(expected.p_value)
    assert sequential_stratified_lift([], sequential).error == "EMPTY_CELL"
