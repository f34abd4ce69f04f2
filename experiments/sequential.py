"""Asymptotic normal-mixture confidence sequence for a difference of means (anytime-valid).

References
----------
Howard, Ramdas, McAuliffe, Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence
sequences", eq. (14) (normal mixture boundary) and the rho tuning of their Section 3.5;
Waudby-Smith et al. (2023), "Time-uniform central limit theory and asymptotic confidence
sequences", eq. (9). Johari, Pekelis, Walsh (2017), "Always valid inference" (mSPRT p-value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from experiments.fixed_horizon import LiftResult, _check, _nan
from experiments.statistics import SampleStats


def optimal_rho(planned_n: float, alpha: float = 0.05) -> float:
    """Mixing parameter making the CS tightest at ``planned_n`` total units.

    ``rho^2 = (-2 log(alpha) + log(-2 log(alpha) + 1)) / n*`` (Howard et al. 2021, Sec. 3.5;
    the tuning GrowthBook and Eppo use).
    """
    if planned_n <= 0:
        raise ValueError(f"planned_n must be > 0, got {planned_n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / planned_n)


def half_width(sigma2: float, n: float, rho: float, alpha: float) -> float:
    """Half-width of the CS for the mean after ``n`` units of per-unit variance ``sigma2``.

    ``sqrt(sigma2) * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / alpha))``
    (Waudby-Smith et al. 2023, eq. 9).
    """
    nr = n * rho**2
    return math.sqrt(
        sigma2 * 2.0 * (nr + 1.0) / (n**2 * rho**2) * math.log(math.sqrt(nr + 1.0) / alpha)
    )


def always_valid_p_value(estimate: float, sigma2: float, n: float, rho: float) -> float:
    """Smallest alpha at which the CS excludes 0 (mSPRT p-value, Johari et al. 2017).

    Solving ``half_width(alpha) = |estimate|`` gives
    ``alpha = sqrt(n rho^2 + 1) * exp(-estimate^2 n^2 rho^2 / (2 sigma2 (n rho^2 + 1)))``.
    """
    nr = n * rho**2
    log_p = 0.5 * math.log(nr + 1.0) - estimate**2 * n**2 * rho**2 / (2.0 * sigma2 * (nr + 1.0))
    return min(1.0, math.exp(log_p))


@dataclass(frozen=True, slots=True)
class SequentialLift:
    """Anytime-valid two-sample test of the absolute lift (difference of means)."""

    alpha: float = 0.05
    planned_n_per_cell: float = 20_000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.planned_n_per_cell <= 0:
            raise ValueError(f"planned_n_per_cell must be > 0, got {self.planned_n_per_cell}")

    @property
    def rho(self) -> float:
        """Mixing parameter tuned for ``2 * planned_n_per_cell`` total units."""
        return optimal_rho(2.0 * self.planned_n_per_cell, self.alpha)

    def compute(self, control: SampleStats, treatment: SampleStats) -> LiftResult:
        """CS and always-valid p-value for ``mean_t - mean_c`` (metric units).

        With ``N = n_c + n_t`` and the Welch variance ``V``, the per-unit variance is ``N V``.
        """
        error = _check(control, treatment)
        if error:
            return _nan(error)
        v = control.variance / control.n + treatment.variance / treatment.n
        n = float(control.n + treatment.n)
        sigma2 = v * n
        diff = treatment.mean - control.mean
        h = half_width(sigma2, n, self.rho, self.alpha)
        return LiftResult(diff, diff - h, diff + h, always_valid_p_value(diff, sigma2, n, self.rho))
