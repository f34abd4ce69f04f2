"""Experiment reports from per-cell sufficient statistics: lift with fixed-horizon and
anytime-valid intervals, CUPED, sample-ratio mismatch, Holm across cells, and a recommendation.

Everything here reads sums (``n``, ``sum``, ``sum_squares`` and the covariate cross sums), so a
report costs O(cells), whatever the number of units. Degenerate data gives a result with an
``error`` code, never an exception.

References
----------
Welch (1947) for the unequal-variance t interval. Delta method for the relative lift.
Howard, Ramdas, McAuliffe, Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic
confidence sequences"; Waudby-Smith et al. (2023), "Time-uniform central limit theory and
asymptotic confidence sequences", eq. (9): the asymptotic normal-mixture confidence sequence
(the one GrowthBook's ``SequentialTwoSidedTTest`` implements). Johari, Pekelis, Walsh (2017),
"Always valid inference", for the mixture-SPRT p-value. Deng, Xu, Kohavi, Walker (2013) for
CUPED. Holm (1979).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from scipy import stats

SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class CellStatistics:
    """Sufficient statistics of one metric in one cell; they add with ``+``.

    ``x`` is the pre-exposure covariate (for CUPED), ``y`` the metric.
    """

    n: int
    sum: float
    sum_squares: float
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0

    def __add__(self, other: CellStatistics) -> CellStatistics:
        return CellStatistics(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_squares + other.sum_squares,
            self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2,
            self.sum_xy + other.sum_xy,
        )

    @property
    def mean(self) -> float:
        return self.sum / self.n

    @property
    def variance(self) -> float:
        """Sample variance (ddof = 1) of the metric."""
        return max(0.0, (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1))

    @property
    def covariate_variance(self) -> float:
        return max(0.0, (self.sum_x2 - self.sum_x * self.sum_x / self.n) / (self.n - 1))

    @property
    def covariance(self) -> float:
        return (self.sum_xy - self.sum_x * self.sum / self.n) / (self.n - 1)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One treatment cell against the control cell on one metric.

    ``lift`` is the absolute difference of means, ``relative_lift`` the ratio minus 1. Intervals
    are two-sided at level ``1 - alpha``; ``sequential_*`` stay valid however often one looks.
    """

    cell: str
    control: str
    lift: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    relative_lift: float | None = None
    relative_ci: tuple[float, float] | None = None
    sequential_ci: tuple[float, float] | None = None
    sequential_p_value: float | None = None
    adjusted_p_value: float | None = None
    error: str | None = None


def mixture_rho(alpha: float, planned_n: int) -> float:
    """The normal mixture's parameter that makes the sequence tightest at ``planned_n`` units.

    Howard et al. (2021), eq. (2.6) / GrowthBook's ``sequential_rho``: ``rho = sqrt((-2 ln a +
    ln(-2 ln a + 1)) / n*)``.
    """
    log_term = -2.0 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1.0)) / planned_n)


def sequential_halfwidth(variance_of_estimate: float, n: int, alpha: float, rho: float) -> float:
    """Half-width of the asymptotic confidence sequence, Waudby-Smith et al. (2023) eq. (9).

    ``s2 = n x Var(estimate)``;
    ``halfwidth = sqrt(s2) sqrt(2 (n rho^2 + 1) / (n^2 rho^2) ln(sqrt(n rho^2 + 1) / alpha))``.
    """
    s2 = variance_of_estimate * n
    nr2 = n * rho * rho
    return math.sqrt(s2) * math.sqrt(
        2.0 * (nr2 + 1.0) / (n * nr2) * math.log(math.sqrt(nr2 + 1.0) / alpha)
    )


def sequential_p_value(estimate: float, variance_of_estimate: float, n: int, rho: float) -> float:
    """The always-valid p-value dual to the sequence: the smallest ``alpha`` whose interval
    excludes 0 (the mixture likelihood ratio's reciprocal, Johari et al. 2017)."""
    s2 = variance_of_estimate * n
    nr2 = n * rho * rho
    exponent = -(n * nr2) * estimate * estimate / (2.0 * s2 * (nr2 + 1.0))
    return min(1.0, math.sqrt(nr2 + 1.0) * math.exp(exponent))


def compare(
    treatment: CellStatistics,
    control: CellStatistics,
    *,
    cell: str,
    control_name: str,
    alpha: float,
    planned_n: int,
) -> Comparison:
    """Absolute and relative lift of ``treatment`` over ``control``."""
    base = Comparison(cell=cell, control=control_name)
    if treatment.n < 2 or control.n < 2:
        return replace(base, error="TOO_FEW_UNITS")
    var_a = control.variance / control.n
    var_b = treatment.variance / treatment.n
    variance = var_a + var_b
    lift = treatment.mean - control.mean
    if variance <= 0.0:
        return replace(base, lift=lift, error="ZERO_VARIANCE")
    # Welch-Satterthwaite degrees of freedom.
    df = variance**2 / (var_a**2 / (control.n - 1) + var_b**2 / (treatment.n - 1))
    t = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    ci = (lift - t * math.sqrt(variance), lift + t * math.sqrt(variance))
    p_value = float(2.0 * stats.t.sf(abs(lift) / math.sqrt(variance), df))
    rho = mixture_rho(alpha, planned_n)
    n = treatment.n + control.n
    half = sequential_halfwidth(variance, n, alpha, rho)
    relative = relative_ci = None
    error = None
    if control.mean != 0.0:
        relative = treatment.mean / control.mean - 1.0
        # Delta method: Var(mb/ma) ~ var_b/ma^2 + mb^2 var_a/ma^4.
        relative_var = var_b / control.mean**2 + treatment.mean**2 * var_a / control.mean**4
        z = float(stats.norm.ppf(1.0 - alpha / 2.0))
        relative_ci = (
            relative - z * math.sqrt(relative_var),
            relative + z * math.sqrt(relative_var),
        )
    else:
        error = "ZERO_CONTROL_MEAN"
    return Comparison(
        cell=cell,
        control=control_name,
        lift=lift,
        ci=(float(ci[0]), float(ci[1])),
        p_value=p_value,
        relative_lift=relative,
        relative_ci=relative_ci,
        sequential_ci=(lift - half, lift + half),
        sequential_p_value=sequential_p_value(lift, variance, n, rho),
        error=error,
    )


def cuped(cells: Mapping[str, CellStatistics]) -> dict[str, CellStatistics]:
    """CUPED-adjusted statistics, Deng et al. (2013): ``y - theta (x - mean x)`` with one
    ``theta = Cov(x, y) / Var(x)`` pooled over the cells (so it does not favour any cell)."""
    pooled = sum(cells.values(), CellStatistics(0, 0.0, 0.0))
    if pooled.n < 3 or pooled.covariate_variance <= 0.0:
        return dict(cells)
    theta = pooled.covariance / pooled.covariate_variance
    mean_x = pooled.sum_x / pooled.n
    adjusted = {}
    for name, c in cells.items():
        # Sums of y' = y - theta (x - mean_x), from the raw sums.
        shift = -theta * (c.sum_x - c.n * mean_x)
        sum_y = c.sum + shift
        sum_y2 = (
            c.sum_squares
            - 2 * theta * (c.sum_xy - mean_x * c.sum)
            + theta * theta * (c.sum_x2 - 2 * mean_x * c.sum_x + c.n * mean_x * mean_x)
        )
        adjusted[name] = CellStatistics(c.n, sum_y, sum_y2, c.sum_x, c.sum_x2, c.sum_xy)
    return adjusted


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Chi-square goodness of fit of the cells' unit counts against their weights."""

    p_value: float | None
    mismatch: bool
    error: str | None = None


def sample_ratio(counts: Sequence[int], weights: Sequence[float]) -> SampleRatio:
    total = sum(counts)
    if total == 0:
        return SampleRatio(None, False, "EMPTY_EXPERIMENT")
    expected = [w / sum(weights) * total for w in weights]
    p_value = float(stats.chisquare(counts, expected).pvalue)
    return SampleRatio(p_value, p_value < SRM_ALPHA)


@dataclass(frozen=True, slots=True)
class MetricReport:
    metric: str
    cuped: bool
    comparisons: tuple[Comparison, ...] = field(default_factory=tuple)


def analyse_metric(
    metric: str,
    cells: Mapping[str, CellStatistics],
    control: str,
    *,
    alpha: float,
    planned_n: int,
    use_cuped: bool,
) -> MetricReport:
    """Every cell against ``control``, Holm-adjusted across cells on the sequential p-values."""
    adjusted = cuped(cells) if use_cuped else dict(cells)
    comparisons = [
        compare(
            adjusted[name],
            adjusted[control],
            cell=name,
            control_name=control,
            alpha=alpha,
            planned_n=planned_n,
        )
        for name in cells
        if name != control
    ]
    valid = [i for i, c in enumerate(comparisons) if c.sequential_p_value is not None]
    adjusted_p = holm([comparisons[i].sequential_p_value or 1.0 for i in valid])
    for i, p in zip(valid, adjusted_p, strict=True):
        comparisons[i] = replace(comparisons[i], adjusted_p_value=p)
    return MetricReport(metric, use_cuped, tuple(comparisons))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the input order.

    The same numbers as statsmodels' ``multipletests(method="holm")`` (checked in the tests),
    which we do not call here: it runs a full garbage collection on every call (~40 ms).
    """
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def recommend(primary: MetricReport, ratio: SampleRatio, alpha: float) -> tuple[str, str]:
    """(``ship`` / ``stop`` / ``keep running``, the reason), from the anytime-valid results."""
    if ratio.mismatch:
        return "stop", f"sample ratio mismatch (p = {ratio.p_value:.2g}): the assignment is broken"
    winners = [
        c
        for c in primary.comparisons
        if c.adjusted_p_value is not None and c.adjusted_p_value < alpha and (c.lift or 0) > 0
    ]
    losers = [
        c
        for c in primary.comparisons
        if c.adjusted_p_value is not None and c.adjusted_p_value < alpha and (c.lift or 0) < 0
    ]
    if winners:
        best = max(winners, key=lambda c: c.lift or 0.0)
        return "ship", f"{best.cell} beats {best.control} on {primary.metric} (anytime-valid)"
    if losers and len(losers) == len(primary.comparisons):
        return "stop", f"every cell does worse than the control on {primary.metric}"
    return "keep running", "no cell differs from the control yet at the chosen alpha"
