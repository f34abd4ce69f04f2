"""Report statistics against statsmodels/scipy, the published formulas, GrowthBook's gbstats
(in its own environment), and simulation."""

from __future__ import annotations

import json
import math
import os
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from experiments.report import (
    CellStatistics,
    analyse_metric,
    compare,
    cuped,
    holm,
    mixture_rho,
    recommend,
    sample_ratio,
    sequential_halfwidth,
)


def of(values: np.ndarray, covariate: np.ndarray | None = None) -> CellStatistics:
    x = np.zeros_like(values) if covariate is None else covariate
    return CellStatistics(
        len(values),
        float(values.sum()),
        float((values**2).sum()),
        float(x.sum()),
        float((x**2).sum()),
        float((x * values).sum()),
    )


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40),
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40),
)
def test_statistics_add_like_concatenation(a: list[float], b: list[float]) -> None:
    joined = of(np.array(a + b))
    summed = of(np.array(a)) + of(np.array(b))
    assert summed.n == joined.n
    assert summed.sum == pytest.approx(joined.sum, abs=1e-6)
    assert summed.variance == pytest.approx(float(np.var(a + b, ddof=1)), rel=1e-6, abs=1e-6)


def test_fixed_horizon_matches_statsmodels_welch() -> None:
    rng = np.random.default_rng(3)
    control, treatment = rng.normal(10, 3, 800), rng.normal(10.4, 4, 650)
    result = compare(
        of(treatment), of(control), cell="b", control_name="a", alpha=0.05, planned_n=2000
    )
    _, p_value, _ = ttest_ind(treatment, control, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(
        alpha=0.05, usevar="unequal"
    )
    assert result.lift == pytest.approx(treatment.mean() - control.mean(), abs=1e-9)
    assert result.p_value == pytest.approx(p_value, abs=1e-9)
    assert result.ci == pytest.approx((low, high), abs=1e-9)


def test_relative_lift_delta_method_covers_in_simulation() -> None:
    rng = np.random.default_rng(5)
    covered, runs = 0, 400
    for _ in range(runs):
        a, b = rng.binomial(1, 0.10, 4000).astype(float), rng.binomial(1, 0.11, 4000).astype(float)
        r = compare(of(b), of(a), cell="b", control_name="a", alpha=0.05, planned_n=8000)
        covered += r.relative_ci[0] <= 0.1 <= r.relative_ci[1]
    assert abs(covered / runs - 0.95) < 4 * math.sqrt(0.95 * 0.05 / runs)


def test_sequential_interval_is_the_published_formula() -> None:
    # Waudby-Smith et al. (2023) eq. (9), written out independently of the module.
    n, var, alpha, planned = 5000, 0.0004, 0.05, 20000
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / planned)
    expected = math.sqrt(var * n) * math.sqrt(
        2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha)
    )
    assert mixture_rho(alpha, planned) == pytest.approx(rho, rel=1e-12)
    assert sequential_halfwidth(var, n, alpha, rho) == pytest.approx(expected, rel=1e-12)


GBSTATS_SCRIPT = """
import json, sys
from gbstats.frequentist.tests import SequentialTwoSidedTTest, SequentialConfig
from gbstats.models.statistics import SampleMeanStatistic
cases = json.load(sys.stdin)
out = []
for c in cases:
    a = SampleMeanStatistic(n=c["a"][0], sum=c["a"][1], sum_squares=c["a"][2])
    b = SampleMeanStatistic(n=c["b"][0], sum=c["b"][1], sum_squares=c["b"][2])
    t = SequentialTwoSidedTTest(a, b, SequentialConfig(alpha=c["alpha"], difference_type="absolute",
                                sequential_tuning_parameter=c["planned"]))
    out.append({"ci": [float(x) for x in t.confidence_interval], "p": float(t.p_value)})
json.dump(out, sys.stdout)
"""


@pytest.mark.skipif(
    not os.environ.get("DECISIONING_GBSTATS_PYTHON"),
    reason="DECISIONING_GBSTATS_PYTHON (a Python with gbstats, which pins numpy < 2) is not set",
)
def test_sequential_interval_matches_gbstats() -> None:
    rng = np.random.default_rng(11)
    cases = []
    for _ in range(20):
        n_a, n_b = int(rng.integers(50, 50_000)), int(rng.integers(50, 50_000))
        a, b = rng.binomial(1, 0.1, n_a).astype(float), rng.normal(0.12, 0.5, n_b)
        cases.append(
            {
                "a": [n_a, float(a.sum()), float((a**2).sum())],
                "b": [n_b, float(b.sum()), float((b**2).sum())],
                "alpha": float(rng.choice([0.01, 0.05, 0.1])),
                "planned": int(rng.integers(1000, 100_000)),
            }
        )
    reference = json.loads(
        subprocess.run(
            [os.environ["DECISIONING_GBSTATS_PYTHON"], "-c", GBSTATS_SCRIPT],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for case, ref in zip(cases, reference, strict=True):
        ours = compare(
            CellStatistics(*case["b"]),
            CellStatistics(*case["a"]),
            cell="b",
            control_name="a",
            alpha=case["alpha"],
            planned_n=case["planned"],
        )
        assert ours.sequential_ci == pytest.approx(tuple(ref["ci"]), abs=1e-6)
        assert ours.sequential_p_value == pytest.approx(ref["p"], abs=1e-6)


def test_sequential_interval_covers_under_continuous_monitoring() -> None:
    rng = np.random.default_rng(7)
    experiments, looks, step = 300, 40, 250
    failures = 0
    for _ in range(experiments):
        a = rng.binomial(1, 0.1, looks * step).astype(float)
        b = rng.binomial(1, 0.1, looks * step).astype(float)
        for k in range(1, looks + 1):
            r = compare(
                of(b[: k * step]),
                of(a[: k * step]),
                cell="b",
                control_name="a",
                alpha=0.05,
                planned_n=2 * looks * step,
            )
            if r.sequential_ci and not r.sequential_ci[0] <= 0 <= r.sequential_ci[1]:
                failures += 1
                break
    assert failures / experiments <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / experiments)


def test_cuped_matches_regression_adjustment_and_reduces_variance() -> None:
    rng = np.random.default_rng(2)
    x = rng.gamma(2.0, 50.0, 6000)
    y = 0.8 * x + rng.normal(0, 20, 6000)
    y[3000:] += 5.0
    cells = {"a": of(y[:3000], x[:3000]), "b": of(y[3000:], x[3000:])}
    adjusted = cuped(cells)
    theta = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
    direct = y - theta * (x - x.mean())
    assert adjusted["b"].mean == pytest.approx(direct[3000:].mean(), rel=1e-9)
    assert adjusted["a"].variance == pytest.approx(np.var(direct[:3000], ddof=1), rel=1e-6)
    assert adjusted["a"].variance < 0.2 * cells["a"].variance
    plain = analyse_metric("value", cells, "a", alpha=0.05, planned_n=6000, use_cuped=False)
    with_cuped = analyse_metric("value", cells, "a", alpha=0.05, planned_n=6000, use_cuped=True)
    width = lambda r: r.comparisons[0].ci[1] - r.comparisons[0].ci[0]  # noqa: E731
    assert width(with_cuped) < 0.5 * width(plain)


def test_sample_ratio_mismatch_against_scipy() -> None:
    counts, weights = [5100, 4900], [0.5, 0.5]
    result = sample_ratio(counts, weights)
    assert result.p_value == pytest.approx(scipy_stats.chisquare(counts).pvalue)
    assert not result.mismatch
    assert sample_ratio([5300, 4700], weights).mismatch
    assert sample_ratio([0, 0], weights).error == "EMPTY_EXPERIMENT"


def test_degenerate_data_carries_an_error_code() -> None:
    one = CellStatistics(1, 1.0, 1.0)
    flat = CellStatistics(10, 0.0, 0.0)
    assert (
        compare(one, flat, cell="b", control_name="a", alpha=0.05, planned_n=100).error
        == "TOO_FEW_UNITS"
    )
    assert (
        compare(flat, flat, cell="b", control_name="a", alpha=0.05, planned_n=100).error
        == "ZERO_VARIANCE"
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="holm")[1]
    assert holm(p_values) == pytest.approx(list(expected), abs=1e-12)


def test_holm_and_recommendation() -> None:
    rng = np.random.default_rng(9)
    cells = {
        "control": of(rng.binomial(1, 0.10, 20000).astype(float)),
        "same": of(rng.binomial(1, 0.10, 20000).astype(float)),
        "better": of(rng.binomial(1, 0.13, 20000).astype(float)),
    }
    report = analyse_metric(
        "conversion", cells, "control", alpha=0.05, planned_n=40000, use_cuped=False
    )
    by_cell = {c.cell: c for c in report.comparisons}
    assert by_cell["better"].adjusted_p_value >= by_cell["better"].sequential_p_value
    action, reason = recommend(report, sample_ratio([20000] * 3, [1, 1, 1]), alpha=0.05)
    assert action == "ship" and "better" in reason
    assert recommend(report, sample_ratio([21000, 20000, 19000], [1, 1, 1]), 0.05)[0] == "stop"
