"""An experiment's analysis, metric by metric: every cell against the control, from sums.

This module only orchestrates: the statistics live in ``fixed_horizon`` (Welch and delta-method
lift), ``sequential`` (the anytime-valid confidence sequence and p-value), ``cuped``, ``srm``
and ``multiple_testing``. Inputs are per-cell ``RegressionStats`` (covariate ``x``, metric
``y``), so a report costs O(cells). Degenerate cells give a comparison carrying the ``error``
code of the test that could not run, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from experiments.cuped import cuped
from experiments.fixed_horizon import LiftResult, absolute_lift, relative_lift
from experiments.multiple_testing import benjamini_hochberg, holm
from experiments.sequential import SequentialLift
from experiments.srm import SrmResult
from experiments.statistics import RegressionStats, SampleStats


@dataclass(frozen=True, slots=True)
class Comparison:
    """One cell against the control on one metric; intervals at level ``1 - alpha``.

    ``lift`` is the difference of means (metric units), ``relative_lift`` the ratio minus 1;
    ``sequential_*`` stay valid however often one looks; ``adjusted_p_value`` is Holm across
    the experiment's cells, on the sequential p-values.
    """

    cell: str
    control: str
    lift: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    relative_lift: float | None
    relative_ci: tuple[float, float] | None
    sequential_ci: tuple[float, float] | None
    sequential_p_value: float | None
    adjusted_p_value: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MetricReport:
    metric: str
    cuped: bool
    comparisons: tuple[Comparison, ...]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _interval(result: LiftResult) -> tuple[float, float] | None:
    if not (math.isfinite(result.ci_low) and math.isfinite(result.ci_high)):
        return None
    return (result.ci_low, result.ci_high)


def analyse_metric(
    metric: str,
    cells: Mapping[str, RegressionStats],
    control: str,
    *,
    alpha: float,
    planned_n_per_cell: float,
    use_cuped: bool,
    horizon: bool = False,
) -> MetricReport:
    """Every cell of ``cells`` against ``control`` on ``metric``, CUPED-adjusted if asked;
    ``horizon``: the planned units are the horizon (``SequentialLift``)."""
    names = list(cells)
    if use_cuped and all(c.n > 1 for c in cells.values()):
        samples = dict(zip(names, cuped([cells[n] for n in names]), strict=True))
    else:
        samples = {n: cells[n].y for n in names}
    sequential = SequentialLift(alpha, planned_n_per_cell, horizon)
    comparisons = [
        _compare(samples[control], samples[name], name, control, alpha, sequential)
        for name in names
        if name != control
    ]
    valid = [i for i, c in enumerate(comparisons) if c.sequential_p_value is not None]
    adjusted = holm([comparisons[i].sequential_p_value or 1.0 for i in valid])
    for i, p in zip(valid, adjusted, strict=True):
        comparisons[i] = replace(comparisons[i], adjusted_p_value=p)
    return MetricReport(metric, use_cuped, tuple(comparisons))


@dataclass(frozen=True, slots=True)
class SegmentComparison:
    """One cell against the control within one segment (``attribute=value``)."""

    segment: str
    comparison: Comparison


def analyse_segments(
    metric: str,
    segments: Mapping[str, Mapping[str, RegressionStats]],
    control: str,
    *,
    alpha: float,
    planned_n_per_cell: float,
    use_cuped: bool,
    horizon: bool = False,
) -> list[SegmentComparison]:
    """Uplift by segment: every cell against ``control`` within each segment.

    Each comparison's ``adjusted_p_value`` is Benjamini-Hochberg across all segments and cells
    of the metric, on the anytime-valid p-values: many segments are read together, and a false
    discovery rate is what a search for where an offer works can afford. Every segment maps
    every cell; a cell without units there (``n = 0``) gives comparisons carrying ``EMPTY_CELL``.
    """
    found = []
    for segment, cells in segments.items():
        report = analyse_metric(
            metric,
            cells,
            control,
            alpha=alpha,
            planned_n_per_cell=planned_n_per_cell,
            use_cuped=use_cuped,
            horizon=horizon,
        )
        found += [SegmentComparison(segment, c) for c in report.comparisons]
    valid = [i for i, s in enumerate(found) if s.comparison.sequential_p_value is not None]
    adjusted = benjamini_hochberg([found[i].comparison.sequential_p_value or 1.0 for i in valid])
    for i, p in zip(valid, adjusted, strict=True):
        found[i] = replace(found[i], comparison=replace(found[i].comparison, adjusted_p_value=p))
    return found


def _compare(
    control: SampleStats,
    treatment: SampleStats,
    cell: str,
    control_name: str,
    alpha: float,
    sequential: SequentialLift,
) -> Comparison:
    absolute = absolute_lift(control, treatment, alpha)
    relative = relative_lift(control, treatment, alpha)
    anytime = sequential.compute(control, treatment)
    return Comparison(
        cell=cell,
        control=control_name,
        lift=_finite(absolute.estimate),
        ci=_interval(absolute),
        p_value=_finite(absolute.p_value),
        relative_lift=_finite(relative.estimate),
        relative_ci=_interval(relative),
        sequential_ci=_interval(anytime),
        sequential_p_value=_finite(anytime.p_value),
        error=absolute.error or anytime.error or relative.error,
    )


def decisive_cell(primary: MetricReport, ratio: SrmResult, alpha: float) -> str | None:
    """The cell the anytime-valid primary results crown, or None while they are undecided.

    Decisive means: no sample-ratio mismatch, and either some cell beats the control after Holm
    (the one with the largest lift) or the control beats every cell.
    """
    if ratio.alarm:
        return None
    significant = [
        c
        for c in primary.comparisons
        if c.adjusted_p_value is not None and c.adjusted_p_value < alpha
    ]
    winners = [c for c in significant if (c.lift or 0.0) > 0]
    if winners:
        return max(winners, key=lambda c: c.lift or 0.0).cell
    if primary.comparisons and len(significant) == len(primary.comparisons):
        return primary.comparisons[0].control
    return None


def recommend(primary: MetricReport, ratio: SrmResult, alpha: float) -> tuple[str, str]:
    """(``ship`` / ``stop`` / ``keep running``, the reason), from the anytime-valid results."""
    if ratio.alarm:
        p = ratio.p_value if ratio.mismatch else ratio.sequential_p_value
        return "stop", f"sample ratio mismatch (p = {p:.2g}): the assignment is broken"
    winner = decisive_cell(primary, ratio, alpha)
    if winner is None:
        return "keep running", "no cell differs from the control yet at the chosen alpha"
    control = primary.comparisons[0].control
    if winner == control:
        return "stop", f"every cell does worse than the control on {primary.metric}"
    return "ship", f"{winner} beats {control} on {primary.metric} (anytime-valid)"
