"""Traffic that follows the evidence: Thompson-sampling cell weights, and the period-stratified
lift that stays unbiased while the weights change.

A bandit experiment runs in periods. In each period new units are assigned with that period's
weights and stay in their cell for good; at the end of a period the weights are reset to each
cell's posterior probability of being the best (Thompson sampling over cells), after an
exploration window with the design's weights. Pooling units across periods would be biased as
soon as the metric drifts over time (a cell that got more traffic in a good week looks better:
Simpson's paradox), so the lift is estimated within each period and the period estimates are
combined with weights proportional to the period's units, as GrowthBook's bandits do.

References
----------
Thompson (1933); Russo et al. (2018), "A tutorial on Thompson sampling", Sec. 7 (batched
updates); GrowthBook documentation, "Bandits" (weights from the probability of being best,
exploration window, per-period weighting of the estimates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from experiments.fixed_horizon import LiftResult, _check, _nan
from experiments.multiple_testing import holm
from experiments.report import Comparison, MetricReport
from experiments.sequential import SequentialLift
from experiments.statistics import SampleStats


def stratified_means(
    periods: Sequence[Mapping[str, SampleStats]],
) -> dict[str, tuple[float, float]]:
    """Each cell's mean over the periods, weighted by each period's share of all units, with
    its standard error: ``(sum w_k mean_k, sqrt(sum w_k^2 var_k / n_k))``.

    Periods in which a cell has fewer than 2 units are left out of every cell's mean, so all
    cells are averaged over the same periods.
    """
    names = sorted({name for period in periods for name in period})
    usable = [p for p in periods if all(p.get(n, SampleStats(0, 0, 0)).n >= 2 for n in names)]
    if not names or not usable:
        raise ValueError("no period where every cell has at least 2 units")
    sizes = np.array([sum(p[n].n for n in names) for p in usable], dtype=float)
    w = sizes / sizes.sum()
    result = {}
    for name in names:
        mean = float(w @ np.array([p[name].mean for p in usable]))
        var = float((w**2) @ np.array([p[name].variance / p[name].n for p in usable]))
        result[name] = (mean, math.sqrt(var))
    return result


def thompson_weights(
    posteriors: Mapping[str, tuple[float, float]],
    *,
    seed: int,
    draws: int = 10_000,
    floor: float = 0.01,
) -> dict[str, float]:
    """Each cell's posterior probability of having the highest mean, floored and renormalised.

    ``posteriors`` maps each cell to the mean and standard error of its metric (a normal
    posterior: flat prior, large sample; ``stratified_means`` gives them). The probabilities are
    the share of ``draws`` joint posterior draws each cell wins, from a generator seeded by
    ``seed`` so every process computes the same weights. ``floor`` keeps every cell in the
    experiment (and its analysis possible).
    """
    if not posteriors:
        raise ValueError("posteriors must not be empty")
    if not 0.0 <= floor * len(posteriors) < 1.0:
        raise ValueError(f"floor x cells must be in [0, 1), got {floor} x {len(posteriors)}")
    names = list(posteriors)
    mean = np.array([posteriors[n][0] for n in names])
    sd = np.array([posteriors[n][1] for n in names])
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(sd)) and np.all(sd >= 0)):
        raise ValueError("posterior means and standard errors must be finite, errors >= 0")
    rng = np.random.default_rng(seed)
    sampled = mean + sd * rng.standard_normal((draws, len(names)))
    wins = np.bincount(np.argmax(sampled, axis=1), minlength=len(names)) / draws
    weights = floor + (1.0 - floor * len(names)) * wins
    return dict(zip(names, (weights / weights.sum()).tolist(), strict=True))


def _stratified(periods: Sequence[tuple[SampleStats, SampleStats]]) -> tuple[float, float, int]:
    """(estimate, standard error, units) over the periods where both cells can be compared."""
    usable = [(c, t) for c, t in periods if _check(c, t) in (None, "ZERO_VARIANCE")]
    if not usable:
        return float("nan"), float("nan"), 0
    sizes = np.array([c.n + t.n for c, t in usable], dtype=float)
    w = sizes / sizes.sum()
    diff = np.array([t.mean - c.mean for c, t in usable])
    var = np.array([c.variance / c.n + t.variance / t.n for c, t in usable])
    return float(w @ diff), math.sqrt(float((w**2) @ var)), int(sizes.sum())


def stratified_lift(
    periods: Sequence[tuple[SampleStats, SampleStats]], alpha: float = 0.05
) -> LiftResult:
    """Difference of means (treatment - control) estimated within each period and combined.

    ``periods`` holds ``(control, treatment)`` statistics of the units first exposed in each
    period. With ``N_k`` the period's units, ``w_k = N_k / sum N`` and the Welch variance
    ``V_k``, the estimate is ``sum w_k (mean_t,k - mean_c,k)`` with variance ``sum w_k^2 V_k``
    and a normal interval. Periods where a cell is empty carry no comparison and are left out.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    estimate, se, n = _stratified(periods)
    if n == 0:
        return _nan("EMPTY_CELL")
    if se == 0.0:
        return _nan("ZERO_VARIANCE")
    q = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(estimate) / se))
    return LiftResult(estimate, estimate - q * se, estimate + q * se, p)


def sequential_stratified_lift(
    periods: Sequence[tuple[SampleStats, SampleStats]], sequential: SequentialLift
) -> LiftResult:
    """The anytime-valid interval and p-value of the stratified lift: the normal-mixture
    boundary of ``sequential`` with the stratified estimate, its variance ``V`` and ``N`` units
    (per-unit variance ``N V``), as ``SequentialLift.compute`` does for one period."""
    estimate, se, n = _stratified(periods)
    if n == 0:
        return _nan("EMPTY_CELL")
    if se == 0.0:
        return _nan("ZERO_VARIANCE")
    h, p = sequential.bounds(estimate, se**2 * n, n)
    return LiftResult(estimate, estimate - h, estimate + h, p)


def analyse_bandit_metric(
    metric: str,
    periods: Sequence[Mapping[str, SampleStats]],
    cells: Sequence[str],
    control: str,
    *,
    alpha: float,
    planned_n_per_cell: float,
    horizon: bool = False,
) -> MetricReport:
    """Every cell against ``control`` on ``metric``, stratified by allocation period, with Holm
    across cells on the anytime-valid p-values (as ``experiments.report.analyse_metric`` does
    for a fixed allocation; no CUPED and no relative lift here)."""
    sequential = SequentialLift(alpha, planned_n_per_cell, horizon)
    empty = SampleStats(0, 0.0, 0.0)
    comparisons = []
    for name in cells:
        if name == control:
            continue
        pairs = [(p.get(control, empty), p.get(name, empty)) for p in periods]
        fixed = stratified_lift(pairs, alpha)
        anytime = sequential_stratified_lift(pairs, sequential)
        error = fixed.error or anytime.error
        comparisons.append(
            Comparison(
                cell=name,
                control=control,
                lift=None if error else fixed.estimate,
                ci=None if error else (fixed.ci_low, fixed.ci_high),
                p_value=None if error else fixed.p_value,
                relative_lift=None,
                relative_ci=None,
                sequential_ci=None if error else (anytime.ci_low, anytime.ci_high),
                sequential_p_value=None if error else anytime.p_value,
                error=error,
            )
        )
    valid = [i for i, c in enumerate(comparisons) if c.sequential_p_value is not None]
    adjusted = holm([comparisons[i].sequential_p_value or 1.0 for i in valid])
    for i, p in zip(valid, adjusted, strict=True):
        comparisons[i] = replace(comparisons[i], adjusted_p_value=p)
    return MetricReport(metric, False, tuple(comparisons))
