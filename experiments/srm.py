"""Sample-ratio mismatch: chi-square goodness of fit against the configured weights.

References
----------
Fabijan et al. (2019), "Diagnosing sample ratio mismatch in online controlled experiments".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import special, stats

from experiments.sequential import optimal_rho

SRM_ALPHA = 0.001
SEQUENTIAL_SRM_ALPHA = 0.01
"""Ville's inequality bounds the false alarms of continuous monitoring by this level."""


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Chi-square statistic, p-value, and whether p < ``SRM_ALPHA``; with the sequential check,
    its anytime-valid p-value and whether it is below ``SEQUENTIAL_SRM_ALPHA``."""

    statistic: float
    p_value: float
    mismatch: bool
    error: str | None = None
    sequential_p_value: float | None = None
    sequential_mismatch: bool = False

    @property
    def alarm(self) -> bool:
        """The assignment looks broken: the sequential check where it ran, since a report is
        read every morning and the chi-square's 0.001 holds for one look only (its false alarms
        grow with every look); the chi-square where it is all there is."""
        if self.sequential_p_value is None:
            return self.mismatch
        return self.sequential_mismatch


def _arrays(counts: Sequence[int], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Counts and weights as float arrays, checked: same length, every weight > 0."""
    c = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    if c.shape != w.shape:
        raise ValueError(f"counts and weights must have the same length, got {c.size}, {w.size}")
    if np.any(w <= 0):
        raise ValueError("weights must be > 0")
    return c, w


def chi_square_srm(counts: Sequence[int], weights: Sequence[float]) -> SrmResult:
    """Pearson chi-square of observed ``counts`` against expected ``weights`` (normalised)."""
    c, w = _arrays(counts, weights)
    if c.sum() == 0:
        return SrmResult(float("nan"), float("nan"), False, "EMPTY_CELL")
    res = stats.chisquare(c, c.sum() * w / w.sum())
    p = float(res.pvalue)
    return SrmResult(float(res.statistic), p, p < SRM_ALPHA)


def log_bayes_factor(counts: np.ndarray, weights: np.ndarray, concentration: float) -> np.ndarray:
    """Log Bayes factor of a Dirichlet-multinomial mixture against the multinomial ``weights``.

    ``BF = [B(a + counts) / B(a)] / prod(w_i^counts_i)`` with ``a = concentration * w``
    (Lindon & Malek 2022, "Anytime-valid inference for multinomial count data", eq. 6).
    ``counts`` may hold many count vectors (cells on the last axis), e.g. a path of looks.
    """
    w = weights / weights.sum()
    a = concentration * w
    log_b_prior = float(np.sum(special.gammaln(a)) - special.gammaln(a.sum()))
    log_b_post = np.sum(special.gammaln(a + counts), axis=-1) - special.gammaln(
        a.sum() + counts.sum(axis=-1)
    )
    result: np.ndarray = log_b_post - log_b_prior - np.sum(counts * np.log(w), axis=-1)
    return result


def srm_concentration(planned_units: float, alpha: float = SEQUENTIAL_SRM_ALPHA) -> float:
    """Dirichlet concentration making the sequential test most sensitive near ``planned_units``.

    The mixture's prior variance of a share, about ``w (1 - w) / concentration``, plays the role
    of the normal mixture's ``rho^2`` on the standardised scale, so the same tuning applies:
    ``concentration = 1 / rho^2`` (Howard et al. 2021, Sec. 3.5). With 40,000 planned units at
    alpha 0.01 it gives about 3,500, where a seeded sweep finds detection of 49:51 highest.
    """
    return 1.0 / optimal_rho(planned_units, alpha) ** 2


def sequential_srm_p_value(
    counts: Sequence[int], weights: Sequence[float], concentration: float = 100.0
) -> float:
    """Anytime-valid SRM p-value: ``1 / BF`` (see ``log_bayes_factor``).

    The Bayes factor is a test martingale under the null, so by Ville's inequality
    ``P(sup 1/BF <= alpha) <= alpha``: the value at any look, however many looks were taken,
    is a valid p-value.
    """
    c, w = _arrays(counts, weights)
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    return float(min(1.0, np.exp(-log_bayes_factor(c, w, concentration))))


def sample_ratio_check(
    counts: Sequence[int], weights: Sequence[float], planned_units: float
) -> SrmResult:
    """The chi-square check (one look) and the sequential one (safe under daily looks)."""
    fixed = chi_square_srm(counts, weights)
    if fixed.error:
        return fixed
    p = sequential_srm_p_value(counts, weights, srm_concentration(planned_units))
    return replace(fixed, sequential_p_value=p, sequential_mismatch=p < SEQUENTIAL_SRM_ALPHA)
