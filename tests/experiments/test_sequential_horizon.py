"""The normal-mixture CS with a planned horizon: the crossing probabilities it is calibrated on
(against simulated Brownian paths), its level under near-continuous monitoring, and its
agreement with the plain mixture where they must agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.sequential import (
    HORIZON_SHARE,
    SequentialLift,
    half_width,
    horizon_crossing,
    horizon_level,
    horizon_p_value,
    mixture_boundary,
    optimal_rho,
)
from experiments.statistics import SampleStats

ALPHA = 0.05
MIXING = SequentialLift(ALPHA, 20_000).mixing  # N rho^2: with the default tuning, alpha's alone


def _brownian_crossing(levels: list[float], paths: int, steps: int, seed: int) -> np.ndarray:
    """Share of simulated Brownian paths on [0, 1] that cross each level's boundary."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1) / steps
    boundaries = mixture_boundary(t[None, :], np.asarray(levels)[:, None], MIXING)
    crossed = np.zeros(len(levels))
    for _ in range(paths // 500):
        w = rng.standard_normal((500, steps)).cumsum(axis=1) / math.sqrt(steps)
        crossed += (np.abs(w)[:, None, :] >= boundaries[None, :, :]).any(axis=2).sum(axis=0)
    return crossed / paths


def test_crossing_before_the_horizon_matches_simulated_brownian_paths() -> None:
    levels = [0.01, 0.05, 0.1]
    computed = horizon_crossing(levels, MIXING)
    # 4,000 steps stand close to continuous monitoring (they miss about 1 % of the crossings).
    simulated = _brownian_crossing(levels, paths=6000, steps=4000, seed=11)
    for got, seen in zip(computed, simulated, strict=True):
        assert abs(got - seen) <= 3 * math.sqrt(got * (1 - got) / 6000) + 0.01 * got


def test_crossing_is_increasing_and_never_above_the_level() -> None:
    levels = np.logspace(-8, 0, 17)
    crossing = horizon_crossing(levels, MIXING)
    assert np.all(np.diff(crossing) > 0)
    assert np.all(crossing <= levels)  # Ville's inequality over the whole future
    # The plain mixture tuned for the plan spends less than 40 % of alpha before it.
    assert 0.3 * ALPHA < horizon_crossing([ALPHA], MIXING)[0] < 0.4 * ALPHA
    # A finer time grid agrees: the continuity correction stands for continuous monitoring.
    fine = horizon_crossing(levels[8:15], MIXING, steps=400)  # 1e-4 to 0.1
    assert crossing[8:15] == pytest.approx(fine, rel=5e-3)


def test_horizon_level_inverts_the_crossing() -> None:
    level = horizon_level(HORIZON_SHARE * ALPHA, MIXING)
    assert ALPHA < level < 2.5 * ALPHA
    assert horizon_crossing([level], MIXING)[0] == pytest.approx(HORIZON_SHARE * ALPHA, rel=5e-3)
    assert horizon_p_value(level, MIXING) == pytest.approx(HORIZON_SHARE * ALPHA, rel=1e-9)
    assert horizon_p_value(1e-12, MIXING) == 1e-12  # below the table: the level bounds it


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="levels"):
        horizon_crossing([0.0], MIXING)
    with pytest.raises(ValueError, match="mixing"):
        horizon_crossing([0.05], 0.0)


def _stats(rng: np.random.Generator, n: int, shift: float) -> SampleStats:
    return SampleStats.from_values(rng.normal(shift, 1.0, n))


def test_the_interval_excludes_zero_exactly_when_p_is_below_alpha() -> None:
    rng = np.random.default_rng(3)
    test = SequentialLift(ALPHA, 500, horizon=True)
    agree = 0
    for n in (50, 200, 500, 800):  # before and past the plan of 1,000 units
        for shift in np.linspace(0.0, 0.5, 26):
            result = test.compute(_stats(rng, n, 0.0), _stats(rng, n, shift))
            excludes = result.ci_low > 0 or result.ci_high < 0
            assert excludes == (result.p_value < ALPHA)
            agree += excludes
    assert 20 < agree < 104  # both answers occur


def test_horizon_narrows_before_the_plan_and_falls_back_on_the_mixture_past_it() -> None:
    rng = np.random.default_rng(4)
    control, treatment = _stats(rng, 400, 0.0), _stats(rng, 400, 0.3)
    plain = SequentialLift(ALPHA, 500).compute(control, treatment)
    horizon = SequentialLift(ALPHA, 500, horizon=True).compute(control, treatment)
    assert horizon.estimate == plain.estimate
    sigma2 = (control.variance / 400 + treatment.variance / 400) * 800
    rho = optimal_rho(1000, ALPHA)
    narrow = half_width(sigma2, 800, rho, horizon_level(HORIZON_SHARE * ALPHA, MIXING))
    assert horizon.ci_high - horizon.estimate == pytest.approx(narrow, rel=1e-12)
    assert horizon.ci_high - horizon.ci_low < 0.95 * (plain.ci_high - plain.ci_low)
    assert horizon.p_value < 0.6 * plain.p_value < 0.06
    # Past the plan (1,200 > 1,000 units) only the reserve, the plain mixture at its share.
    late_c, late_t = _stats(rng, 600, 0.0), _stats(rng, 600, 0.1)
    late = SequentialLift(ALPHA, 500, horizon=True).compute(late_c, late_t)
    sigma2 = (late_c.variance / 600 + late_t.variance / 600) * 1200
    reserve = half_width(sigma2, 1200, rho, (1 - HORIZON_SHARE) * ALPHA)
    assert late.ci_high - late.estimate == pytest.approx(reserve, rel=1e-12)
    plain_late = SequentialLift(ALPHA, 500).compute(late_c, late_t)
    assert late.p_value == pytest.approx(min(1.0, plain_late.p_value / (1 - HORIZON_SHARE)))


def test_level_holds_under_near_continuous_monitoring() -> None:
    """A/A with estimated variances, a look after every 2 units per arm up to the plan: the
    type I error is the horizon's share of alpha, spent (not merely bounded)."""
    rng = np.random.default_rng(12)
    sims, per_arm = 4000, 1000
    test = SequentialLift(ALPHA, per_arm, horizon=True)
    c = rng.normal(0.0, 1.0, (sims, per_arm))
    t = rng.normal(0.0, 1.0, (sims, per_arm))
    n = np.arange(1, per_arm + 1)
    looks = slice(19, None, 2)  # from 20 units per arm, every 2

    def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = x.cumsum(axis=1) / n
        return mean[:, looks], ((x**2).cumsum(axis=1) / n - mean**2)[:, looks] * n[looks] / (
            n[looks] - 1
        )

    (mc, vc), (mt, vt) = moments(c), moments(t)
    z = (mt - mc) / np.sqrt((vc + vt) / n[looks])
    fraction = 2.0 * n[looks] / test.planned_n
    boundary = mixture_boundary(fraction, test.level(test.planned_n), MIXING)
    rejected = float((np.abs(z) * np.sqrt(fraction) >= boundary).any(axis=1).mean())
    spent = HORIZON_SHARE * ALPHA
    assert abs(rejected - spent) <= 3 * math.sqrt(spent * (1 - spent) / sims)
