"""Sample-ratio mismatch: chi-square goodness of fit against the configured weights.

References
----------
Fabijan et al. (2019), "Diagnosing sample ratio mismatch in online controlled experiments".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Chi-square statistic, p-value, and whether p < ``SRM_ALPHA``."""

    statistic: float
    p_value: float
    mismatch: bool
    error: str | None = None


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


def sequential_srm_p_value(
    counts: Sequence[int], weights: Sequence[float], concentration: float = 100.0
) -> float:
    """Anytime-valid SRM p-value: ``1 / BF`` of a Dirichlet-multinomial mixture vs the weights.

    ``BF = [B(a + counts) / B(a)] / prod(w_i^counts_i)`` with ``a = concentration * w``
    (Lindon & Malek 2022, "Anytime-valid inference for multinomial count data", eq. 6). The
    Bayes factor is a test martingale under the null, so by Ville's inequality
    ``P(sup 1/BF <= alpha) <= alpha``; take the running minimum over looks when monitoring.
    """
    c, w = _arrays(counts, weights)
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    w = w / w.sum()
    a = concentration * w

    def log_beta(v: np.ndarray) -> float:
        return float(np.sum(special.gammaln(v)) - special.gammaln(np.sum(v)))

    log_bf = log_beta(a + c) - log_beta(a) - float(np.sum(c * np.log(w)))
    return float(min(1.0, np.exp(-log_bf)))
