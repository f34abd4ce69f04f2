"""Checks of the analysis library against statsmodels / scipy and the published formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from experiments import (
    RegressionStats,
    SampleStats,
    SequentialLift,
    absolute_lift,
    benjamini_hochberg,
    chi_square_srm,
    holm,
    optimal_rho,
    relative_lift,
)

floats = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=50, derandomize=True)
@given(st.lists(floats, max_size=30), st.lists(floats, max_size=30))
def test_adding_stats_equals_stats_of_concatenation(a: list[float], b: list[float]) -> None:
    left = SampleStats.from_values(a) + SampleStats.from_values(b)
    both = SampleStats.from_values(a + b)
    assert left.n == both.n
    assert left.sum == pytest.approx(both.sum, abs=1e-6)
    assert left.sum_squares == pytest.approx(both.sum_squares, rel=1e-9, abs=1e-6)
    r = RegressionStats.from_values(a, a) + RegressionStats.from_values(b, b)
    assert r.sum_xy == pytest.approx(both.sum_squares, rel=1e-9, abs=1e-6)


def _samples(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, 300), rng.normal(1.3, 3.0, 500)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_welch_matches_statsmodels(seed: int) -> None:
    c, t = _samples(seed)
    res = absolute_lift(SampleStats.from_values(c), SampleStats.from_values(t))
    _, p, _ = ttest_ind(t, c, usevar="unequal")
    lo, hi = CompareMeans(DescrStatsW(t), DescrStatsW(c)).tconfint_diff(usevar="unequal")
    assert res.p_value == pytest.approx(p, abs=1e-9)
    assert res.ci_low == pytest.approx(lo, abs=1e-9)
    assert res.ci_high == pytest.approx(hi, abs=1e-9)
    z = absolute_lift(SampleStats.from_values(c), SampleStats.from_values(t), distribution="z")
    zlo, zhi = CompareMeans(DescrStatsW(t), DescrStatsW(c)).zconfint_diff(usevar="unequal")
    assert z.ci_low == pytest.approx(zlo, abs=1e-9)
    assert z.ci_high == pytest.approx(zhi, abs=1e-9)


def test_relative_lift_delta_method() -> None:
    c, t = _samples(4)
    res = relative_lift(SampleStats.from_values(c), SampleStats.from_values(t))
    mc, mt = c.mean(), t.mean()
    vc, vt = c.var(ddof=1) / c.size, t.var(ddof=1) / t.size
    se = math.sqrt(vt / mc**2 + mt**2 * vc / mc**4)
    assert res.estimate == pytest.approx(mt / mc - 1, rel=1e-12)
    assert res.ci_high - res.estimate == pytest.approx(stats.norm.ppf(0.975) * se, rel=1e-9)


def test_degenerate_data_returns_error_codes() -> None:
    empty = SampleStats(0, 0.0, 0.0)
    one = SampleStats.from_values([1.0])
    const = SampleStats.from_values([2.0, 2.0, 2.0])
    ok = SampleStats.from_values([1.0, 2.0, 3.0])
    assert absolute_lift(empty, ok).error == "EMPTY_CELL"
    assert absolute_lift(one, ok).error == "TOO_FEW_UNITS"
    assert absolute_lift(const, const).error == "ZERO_VARIANCE"
    assert SequentialLift().compute(const, const).error == "ZERO_VARIANCE"
    assert absolute_lift(ok, ok).error is None
    zeros = SampleStats.from_values([0.0, 0.0, 0.0])  # e.g. no conversion yet in a new cell
    assert relative_lift(ok, zeros).error == "ZERO_VARIANCE"
    assert relative_lift(zeros, ok).error == "ZERO_CONTROL_MEAN"


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="alpha"):
        SequentialLift(alpha=1.5)
    with pytest.raises(ValueError, match="planned_n_per_cell"):
        SequentialLift(planned_n_per_cell=0)


def test_confidence_sequence_against_published_formula() -> None:
    c, t = _samples(5)
    test = SequentialLift(alpha=0.05, planned_n_per_cell=1000)
    res = test.compute(SampleStats.from_values(c), SampleStats.from_values(t))
    n = c.size + t.size
    sigma2 = (c.var(ddof=1) / c.size + t.var(ddof=1) / t.size) * n
    rho2 = (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 2000
    h = math.sqrt(sigma2) * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / 0.05)
    )
    assert test.rho == pytest.approx(math.sqrt(rho2), rel=1e-12)
    assert res.ci_high - res.estimate == pytest.approx(h, rel=1e-9)
    # the p-value is the alpha at which the CS boundary touches 0
    at_p = SequentialLift(alpha=res.p_value, planned_n_per_cell=1000)
    if res.p_value < 1.0:
        hp = at_p.compute(SampleStats.from_values(c), SampleStats.from_values(t))
        # rho depends on alpha too, so recompute with the same rho
        from experiments.sequential import half_width

        assert half_width(sigma2, n, test.rho, res.p_value) == pytest.approx(
            abs(res.estimate), rel=1e-9
        )
        assert hp.error is None


def test_cs_wider_than_fixed_horizon() -> None:
    c, t = _samples(6)
    cs, ct = SampleStats.from_values(c), SampleStats.from_values(t)
    seq = SequentialLift(planned_n_per_cell=400).compute(cs, ct)
    fix = absolute_lift(cs, ct, distribution="z")
    assert seq.ci_high - seq.ci_low > fix.ci_high - fix.ci_low


def test_sequential_coverage_under_peeking() -> None:
    rng = np.random.default_rng(7)
    sims, looks, step = 400, 20, 50
    c = rng.normal(0, 1, (sims, looks * step))
    t = rng.normal(0, 1, (sims, looks * step))
    test = SequentialLift(planned_n_per_cell=looks * step / 2)
    misses = 0
    for i in range(sims):
        for k in range(1, looks + 1):
            r = test.compute(
                SampleStats.from_values(c[i, : k * step]), SampleStats.from_values(t[i, : k * step])
            )
            if r.ci_low > 0 or r.ci_high < 0:
                misses += 1
                break
    # binomial bound: 5% + 3 standard errors at 400 simulations
    assert misses / sims <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)


def test_holm_and_bh_match_statsmodels() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(0, 0.2, 25)
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist(), abs=1e-12)
    assert benjamini_hochberg(p) == pytest.approx(
        multipletests(p, method="fdr_bh")[1].tolist(), abs=1e-12
    )


def test_srm_matches_scipy() -> None:
    res = chi_square_srm([4900, 5100], [1, 1])
    ref = stats.chisquare([4900, 5100], [5000, 5000])
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert not res.mismatch
    assert chi_square_srm([4000, 6000], [1, 1]).mismatch
    assert chi_square_srm([0, 0], [1, 1]).error == "EMPTY_CELL"


def test_optimal_rho_decreases_with_planned_n() -> None:
    assert optimal_rho(1000) > optimal_rho(40_000)


def test_sequential_srm_false_alarms_and_detection() -> None:
    from experiments.srm import sequential_srm_p_value

    rng = np.random.default_rng(12)
    alarms = 0
    for _ in range(200):
        a = rng.binomial(1, 0.5, 20_000).cumsum()
        steps = np.arange(500, 20_001, 500)
        p = min(sequential_srm_p_value([a[s - 1], s - a[s - 1]], [1, 1]) for s in steps)
        alarms += p < 0.001
    assert alarms <= 2
    assert sequential_srm_p_value([4000, 6000], [1, 1]) < 0.001


def test_log_bayes_factor_of_a_path_matches_each_look() -> None:
    from experiments.srm import log_bayes_factor, sequential_srm_p_value

    path = np.array([[[480, 520], [1010, 990]], [[300, 700], [2, 1]]], dtype=float)
    log_bf = log_bayes_factor(path, np.array([0.3, 0.7]), 250.0)
    assert log_bf.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            p = sequential_srm_p_value(list(path[i, j]), [0.3, 0.7], 250.0)
            assert p == pytest.approx(min(1.0, math.exp(-log_bf[i, j])), rel=1e-9)


def test_srm_concentration_is_the_mixtures_rho_tuning() -> None:
    from experiments.srm import srm_concentration

    assert srm_concentration(40_000, 0.01) == pytest.approx(1 / optimal_rho(40_000, 0.01) ** 2)
    assert 3000 < srm_concentration(40_000, 0.01) < 4000


def test_sample_ratio_check_carries_both_checks() -> None:
    from experiments.srm import sample_ratio_check

    balanced = sample_ratio_check([5000, 5020], [1, 1], 20_000)
    assert not balanced.alarm and balanced.sequential_p_value == 1.0
    # 1,800 vs 2,200: chi-square p = 2.5e-10, far past both levels.
    skewed = sample_ratio_check([1800, 2200], [1, 1], 20_000)
    assert skewed.mismatch and skewed.sequential_mismatch and skewed.alarm
    # 2,380 vs 2,620 at a quarter of the plan: one look's chi-square says p = 0.0007, but a
    # daily reader has taken many looks; the anytime-valid p (0.12) keeps false alarms at 1 %.
    borderline = sample_ratio_check([2380, 2620], [1, 1], 20_000)
    assert borderline.mismatch and not borderline.sequential_mismatch and not borderline.alarm
    assert chi_square_srm([2380, 2620], [1, 1]).alarm
    # The same share at the plan (9,520 vs 10,480): the horizon test has the evidence now.
    assert sample_ratio_check([9520, 10480], [1, 1], 20_000).alarm
    assert sample_ratio_check([0, 0], [1, 1], 1000).error == "EMPTY_CELL"


def test_the_sup_of_brownian_motion_law_agrees_with_its_bounds_and_with_simulation() -> None:
    from experiments.srm import brownian_sup_boundary, brownian_sup_tail

    c = np.linspace(0.2, 4.0, 40)
    tail = brownian_sup_tail(c)
    assert np.all(np.diff(tail) < 0)  # decreasing in c
    # Reflection: P(sup W >= c) = 2 (1 - Phi(c)) <= P(sup |W| >= c) <= 2 P(sup W >= c).
    one_sided = 2 * stats.norm.sf(c)
    assert np.all(tail >= one_sided - 1e-12) and np.all(
        tail <= np.minimum(1, 2 * one_sided) + 1e-12
    )
    # The two series meet at c = 1 (each used on its side).
    assert brownian_sup_tail(1.0 - 1e-9) == pytest.approx(brownian_sup_tail(1.0), abs=1e-8)
    # Simulated paths of 20,000 steps (a discrete path slightly undershoots the continuous sup).
    rng = np.random.default_rng(11)
    steps = 20_000
    sup = np.zeros(4_000)
    position = np.zeros(4_000)
    for _ in range(steps // 500):
        walk = np.cumsum(rng.standard_normal((4_000, 500)), axis=1) / np.sqrt(steps)
        sup = np.maximum(sup, np.abs(position[:, None] + walk).max(axis=1))
        position = position + walk[:, -1]
    for level in (0.5, 1.0, 2.0):
        assert (sup >= level).mean() == pytest.approx(float(brownian_sup_tail(level)), abs=0.03)
    assert float(brownian_sup_tail(brownian_sup_boundary(0.01))) == pytest.approx(0.01, rel=1e-6)


def test_the_horizon_srm_test_holds_its_level_under_near_continuous_monitoring() -> None:
    """Looks after every 50 units up to the plan, three cells with unequal weights: the share
    of 3,000 null paths that ever alarm at 1 % stays within binomial tolerance of 1 %."""
    from experiments.srm import brownian_sup_boundary, horizon_deviations, horizon_tests

    rng = np.random.default_rng(12)
    weights = np.array([0.2, 0.3, 0.5])
    planned, step, paths = 10_000, 50, 3_000
    draws = rng.multinomial(step, weights, size=(paths, planned // step)).cumsum(axis=1)
    boundary = brownian_sup_boundary(0.01 / horizon_tests(3))
    alarms = (horizon_deviations(draws.astype(float), weights, planned) >= boundary).any(
        axis=(1, 2)
    )
    assert alarms.mean() <= 0.01 + 3 * (0.01 * 0.99 / paths) ** 0.5


def test_the_horizon_p_value_stops_at_the_plan_and_the_mixture_carries_on() -> None:
    from experiments.srm import (
        HORIZON_SHARE,
        anytime_srm_p_value,
        horizon_srm_p_value,
        sequential_srm_p_value,
        srm_concentration,
    )

    assert horizon_srm_p_value([10_100, 10_000], [1, 1], 20_000) is None
    past = [12_000, 12_800]  # beyond the plan: only the mixture, at its share of the level
    mixture = sequential_srm_p_value(past, [1, 1], srm_concentration(20_000, 0.01 * 0.2))
    assert anytime_srm_p_value(past, [1, 1], 20_000) == pytest.approx(mixture / (1 - HORIZON_SHARE))
    mixture_share = 1 - HORIZON_SHARE
    for within in ([4_700, 5_300], [9_750, 10_250]):  # within the plan: the smaller of the two
        horizon = horizon_srm_p_value(within, [1, 1], 20_000)
        assert horizon is not None
        mixture = sequential_srm_p_value(within, [1, 1], srm_concentration(20_000, 0.002))
        assert anytime_srm_p_value(within, [1, 1], 20_000) == pytest.approx(
            min(1.0, horizon / HORIZON_SHARE, mixture / mixture_share)
        )
    # A small mismatch reached at the plan: the horizon test sees it, the mixture does not.
    assert horizon / HORIZON_SHARE < 0.01 < mixture / mixture_share
