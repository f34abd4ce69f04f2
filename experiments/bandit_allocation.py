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

import numpy as np
from scipy import stats

from experiments.fixed_horizon import LiftResult, _check, _nan
from experiments.statistics import SampleStats


def thompson_weights(
    cells: Mapping[str, SampleStats],
    *,
    seed: int,
    draws: int = 10_000,
    floor: float = 0.01,
) -> dict[str, float]:
    """Each cell's posterior probability of having the highest mean, floored and renormalised.

    The posterior of a cell's mean is ``N(mean, variance / n)`` (flat prior, large-sample); the
    probabilities are the share of ``draws`` joint posterior draws each cell wins, from a
    generator seeded by ``seed`` so every process computes the same weights. ``floor`` keeps
    every cell in the experiment (and its analysis possible).
    """
    if not cells:
        raise ValueError("cells must not be empty")
    if not 0.0 <= floor * len(cells) < 1.0:
        raise ValueError(f"floor x cells must be in [0, 1), got {floor} x {len(cells)}")
    names = list(cells)
    for name in names:
        if cells[name].n < 2:
            raise ValueError(f"cell {name!r} needs at least 2 units, has {cells[name].n}")
    mean = np.array([cells[n].mean for n in names])
    sd = np.sqrt(np.array([cells[n].variance / cells[n].n for n in names]))
    rng = np.random.default_rng(seed)
    sampled = mean + sd * rng.standard_normal((draws, len(names)))
    wins = np.bincount(np.argmax(sampled, axis=1), minlength=len(names)) / draws
    weights = floor + (1.0 - floor * len(names)) * wins
    return dict(zip(names, (weights / weights.sum()).tolist(), strict=True))


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
    usable = [(c, t) for c, t in periods if _check(c, t) in (None, "ZERO_VARIANCE")]
    if not usable:
        return _nan("EMPTY_CELL")
    sizes = np.array([c.n + t.n for c, t in usable], dtype=float)
    w = sizes / sizes.sum()
    diff = np.array([t.mean - c.mean for c, t in usable])
    var = np.array([c.variance / c.n + t.variance / t.n for c, t in usable])
    estimate = float(w @ diff)
    se = math.sqrt(float((w**2) @ var))
    if se == 0.0:
        return _nan("ZERO_VARIANCE")
    q = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(estimate) / se))
    return LiftResult(estimate, estimate - q * se, estimate + q * se, p)
