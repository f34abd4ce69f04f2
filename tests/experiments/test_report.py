"""The report's orchestration: every cell against the control, CUPED on request, Holm across
cells, degenerate cells as error codes, and the recommendation. The statistics themselves are
tested in their own modules' tests."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.fixed_horizon import absolute_lift
from experiments.multiple_testing import holm
from experiments.report import analyse_metric, recommend
from experiments.srm import chi_square_srm
from experiments.statistics import RegressionStats


def cell(y: np.ndarray, x: np.ndarray | None = None) -> RegressionStats:
    return RegressionStats.from_values(np.zeros_like(y) if x is None else x, y)


def test_each_cell_against_the_control_with_holm_across_cells() -> None:
    rng = np.random.default_rng(9)
    cells = {
        "control": cell(rng.binomial(1, 0.10, 20000).astype(float)),
        "same": cell(rng.binomial(1, 0.10, 20000).astype(float)),
        "better": cell(rng.binomial(1, 0.13, 20000).astype(float)),
    }
    report = analyse_metric(
        "conversion", cells, "control", alpha=0.05, planned_n_per_cell=20000, use_cuped=False
    )
    by_cell = {c.cell: c for c in report.comparisons}
    assert set(by_cell) == {"same", "better"}
    direct = absolute_lift(cells["control"].y, cells["better"].y, 0.05)
    assert by_cell["better"].lift == pytest.approx(direct.estimate)
    assert by_cell["better"].ci == pytest.approx((direct.ci_low, direct.ci_high))
    raw = [c.sequential_p_value for c in report.comparisons]
    assert [c.adjusted_p_value for c in report.comparisons] == pytest.approx(holm(raw))
    seq = by_cell["better"].sequential_ci
    assert seq[0] < by_cell["better"].ci[0] and seq[1] > by_cell["better"].ci[1]


def test_cuped_narrows_the_intervals() -> None:
    rng = np.random.default_rng(2)
    x = rng.gamma(2.0, 50.0, 6000)
    y = 0.8 * x + rng.normal(0, 20, 6000)
    y[3000:] += 5.0
    cells = {"a": cell(y[:3000], x[:3000]), "b": cell(y[3000:], x[3000:])}
    width = {}
    for use in (False, True):
        [c] = analyse_metric(
            "value", cells, "a", alpha=0.05, planned_n_per_cell=3000, use_cuped=use
        ).comparisons
        width[use] = c.ci[1] - c.ci[0]
        assert c.ci[0] < 5.0 < c.ci[1]
    assert width[True] < 0.5 * width[False]


def test_an_empty_cell_is_an_error_code_not_an_exception() -> None:
    cells = {"a": cell(np.array([1.0, 0.0, 1.0])), "b": RegressionStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)}
    [c] = analyse_metric(
        "conversion", cells, "a", alpha=0.05, planned_n_per_cell=100, use_cuped=True
    ).comparisons
    assert c.error is not None and c.lift is None and c.sequential_ci is None


def test_recommendation() -> None:
    rng = np.random.default_rng(4)
    cells = {
        "control": cell(rng.binomial(1, 0.10, 20000).astype(float)),
        "better": cell(rng.binomial(1, 0.13, 20000).astype(float)),
    }
    report = analyse_metric(
        "conversion", cells, "control", alpha=0.05, planned_n_per_cell=20000, use_cuped=False
    )
    action, reason = recommend(report, chi_square_srm([20000, 20000], [1, 1]), alpha=0.05)
    assert action == "ship" and "better" in reason
    assert recommend(report, chi_square_srm([21000, 19000], [1, 1]), 0.05)[0] == "stop"
    same = {"control": cells["control"], "copy": cells["control"]}
    flat = analyse_metric(
        "conversion", same, "control", alpha=0.05, planned_n_per_cell=20000, use_cuped=False
    )
    assert recommend(flat, chi_square_srm([20000, 20000], [1, 1]), 0.05)[0] == "keep running"


def test_a_segment_without_control_units_carries_empty_cell() -> None:
    from experiments.report import analyse_segments

    full = RegressionStats.from_values([0.0] * 50, [1.0] * 20 + [0.0] * 30)
    empty = RegressionStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    [kept, missing] = analyse_segments(
        "conversion",
        {"group=a": {"c": full, "t": full}, "group=b": {"c": empty, "t": full}},
        "c",
        alpha=0.05,
        planned_n_per_cell=1000,
        use_cuped=True,
    )
    assert (kept.segment, kept.comparison.error) == ("group=a", None)
    assert kept.comparison.adjusted_p_value == pytest.approx(kept.comparison.sequential_p_value)
    assert (missing.segment, missing.comparison.error) == ("group=b", "EMPTY_CELL")
    assert missing.comparison.adjusted_p_value is None
