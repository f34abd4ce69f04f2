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
    # 9,760 vs 10,240: one look's chi-square says p = 0.0007, but a daily reader has taken many
    # looks; the anytime-valid p (0.018) is the one that keeps false alarms at 1 %.
    borderline = sample_ratio_check([9760, 10240], [1, 1], 20_000)
    assert borderline.mismatch and not borderline.sequential_mismatch and not borderline.alarm
    assert chi_square_srm([9760, 10240], [1, 1]).alarm
    assert sample_ratio_check([0, 0], [1, 1], 1000).error == "EMPTY_CELL"
