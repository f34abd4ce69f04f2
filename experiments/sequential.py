"""Asymptotic normal-mixture confidence sequence for a difference of means (anytime-valid).

Two ways to spend ``alpha``:

* the plain mixture (Howard et al. 2021): ``alpha`` over an unbounded horizon, by Ville's
  inequality;
* with a planned horizon of ``N`` units (``SequentialLift(horizon=True)``): ``HORIZON_SHARE`` of
  ``alpha`` up to ``N``, on the same mixture boundary at the larger level ``a`` whose crossing
  probability before ``N`` under continuous monitoring is exactly that share
  (``horizon_crossing``), and the rest on the plain mixture for ever, weighted Bonferroni as
  in ``experiments.srm``. The plain mixture spends only about 40 % of its ``alpha`` before the
  ``N`` it is tuned for (at ``alpha = 0.05``); the rest waits on a future the plan does not have.

References
----------
Howard, Ramdas, McAuliffe, Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence
sequences", eq. (14) (normal mixture boundary) and the rho tuning of their Section 3.5;
Waudby-Smith et al. (2023), "Time-uniform central limit theory and asymptotic confidence
sequences", eq. (9). Johari, Pekelis, Walsh (2017), "Always valid inference" (mSPRT p-value).
Armitage, McPherson & Rowe (1969), "Repeated significance tests on accumulating data", JRSS A
132 (the crossing recursion); Siegmund (1979), "Corrected diffusion approximations in certain
random walk problems", Adv. Appl. Probab. 11, and Siegmund (1985), "Sequential Analysis", Ch. X
(a boundary watched at steps of variance ``d`` is crossed as if watched continuously when moved
by ``0.5826 sqrt(d)``, ``0.5826 = -zeta(1/2) / sqrt(2 pi)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal, stats

from experiments.fixed_horizon import LiftResult, _check, _nan
from experiments.statistics import SampleStats

HORIZON_SHARE = 0.8
"""With a horizon, the part of ``alpha`` spent up to the planned units; the plain mixture gets
the rest and keeps the interval valid past the plan."""
_TABLE_LEVELS = np.logspace(-8.0, 0.0, 49)  # mixture levels of the crossing table
_OVERSHOOT = 0.5826  # -zeta(1/2) / sqrt(2 pi): a Gaussian walk's overshoot per sqrt(step)


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


def mixture_boundary(t: ArrayLike, level: ArrayLike, mixing: float) -> np.ndarray:
    """The mixture boundary at ``level`` for the standardised sum ``S_n / (sigma sqrt(N))`` at
    ``t = n / N``, with ``mixing = N rho^2``:
    ``sqrt((t + 1 / mixing) (log(1 + t mixing) - 2 log(level)))`` (``half_width`` in units
    of the sum: ``n h / (sigma sqrt(N))``)."""
    t, level = np.asarray(t, dtype=float), np.asarray(level, dtype=float)
    result: np.ndarray = np.sqrt((t + 1.0 / mixing) * (np.log1p(t * mixing) - 2.0 * np.log(level)))
    return result


def horizon_crossing(levels: ArrayLike, mixing: float, steps: int = 200) -> np.ndarray:
    """``P_H0(|W(t)| >= mixture_boundary(t, a) for some t in (0, 1])`` for each level ``a``:
    the plain mixture's type I error spent before the horizon, under continuous monitoring.

    ``W`` is the standardised sum as a Brownian motion in ``t = n / N``. The density of the
    paths still inside is carried on a grid from step to step (Armitage, McPherson & Rowe
    1969) and the mass beyond the boundary at each step is added up; the boundary is lowered
    by ``0.5826 sqrt(step)`` so that ``steps`` looks stand for continuous monitoring (Siegmund
    1979). At 200 steps the result is within 0.3 % (relative) of 400.
    """
    a = np.atleast_1d(np.asarray(levels, dtype=float))
    if np.any(a <= 0) or np.any(a > 1):
        raise ValueError("levels must be in (0, 1]")
    if mixing <= 0:
        raise ValueError(f"mixing must be > 0, got {mixing}")
    dt = 1.0 / steps
    sd = math.sqrt(dt)
    dx = sd / 7.0
    reach = float(mixture_boundary(1.0, a.min(), mixing)) + 8.0 * sd
    x = np.arange(-reach, reach + dx / 2.0, dx)
    offsets = np.arange(-math.ceil(8.0 * sd / dx), math.ceil(8.0 * sd / dx) + 1) * dx
    kernel = (stats.norm.pdf(offsets, scale=sd) * dx)[:, None]
    density = np.repeat(stats.norm.pdf(x, scale=sd)[:, None], a.size, axis=1)
    crossed = np.zeros(a.size)
    for step in range(1, steps + 1):
        if step > 1:
            density = signal.fftconvolve(density, kernel, mode="same", axes=0)
        edge = mixture_boundary(step * dt, a, mixing) - _OVERSHOOT * sd
        # The share of each grid cell beyond the boundary (the boundary falls between points).
        beyond = np.clip(0.5 - (edge[None, :] - np.abs(x)[:, None]) / dx, 0.0, 1.0)
        crossed += (density * beyond).sum(axis=0) * dx
        density *= 1.0 - beyond
    result: np.ndarray = np.minimum(crossed, a)  # Ville: never more than the whole horizon's
    return result


@lru_cache(maxsize=16)
def _crossing_table(mixing: float) -> tuple[np.ndarray, np.ndarray]:
    """``log`` of ``_TABLE_LEVELS`` and of their ``horizon_crossing``: increasing together."""
    return np.log(_TABLE_LEVELS), np.log(horizon_crossing(_TABLE_LEVELS, mixing))


def horizon_level(spent: float, mixing: float) -> float:
    """The mixture level whose boundary is crossed before the horizon with probability
    ``spent`` (the inverse of ``horizon_crossing``, interpolated in log-log)."""
    log_levels, log_crossing = _crossing_table(mixing)
    return float(np.exp(np.interp(math.log(spent), log_crossing, log_levels)))


def horizon_p_value(mixture_p: float, mixing: float) -> float:
    """``horizon_crossing`` of the mixture p-value: the type I error before the horizon of the
    boundary that the data touch. Below the table the level itself bounds it (Ville)."""
    if mixture_p < _TABLE_LEVELS[0]:
        return mixture_p
    log_levels, log_crossing = _crossing_table(mixing)
    return float(np.exp(np.interp(math.log(mixture_p), log_levels, log_crossing)))


@dataclass(frozen=True, slots=True)
class SequentialLift:
    """Anytime-valid two-sample test of the absolute lift (difference of means).

    ``horizon``: the planned units are the horizon, spend ``HORIZON_SHARE`` of ``alpha`` up to
    them (see the module docstring); otherwise the plain mixture, tuned for them.
    """

    alpha: float = 0.05
    planned_n_per_cell: float = 20_000.0
    horizon: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.planned_n_per_cell <= 0:
            raise ValueError(f"planned_n_per_cell must be > 0, got {self.planned_n_per_cell}")

    @property
    def planned_n(self) -> float:
        """Planned units of a comparison: two cells."""
        return 2.0 * self.planned_n_per_cell

    @property
    def rho(self) -> float:
        """Mixing parameter tuned for ``planned_n`` total units."""
        return optimal_rho(self.planned_n, self.alpha)

    @property
    def mixing(self) -> float:
        """``planned_n rho^2``: the mixture's tuning on the scale of the plan (``t = n / N``)."""
        return self.planned_n * self.rho**2

    def level(self, n: float) -> float:
        """The mixture level of the boundary after ``n`` units: ``alpha`` for the plain mixture;
        with a horizon, the level spending ``HORIZON_SHARE`` of ``alpha`` up to the plan, and
        the rest of ``alpha`` past it."""
        if not self.horizon:
            return self.alpha
        if n <= self.planned_n:
            return horizon_level(HORIZON_SHARE * self.alpha, self.mixing)
        return (1.0 - HORIZON_SHARE) * self.alpha

    def bounds(self, estimate: float, sigma2: float, n: float) -> tuple[float, float]:
        """``(half-width, p-value)`` after ``n`` units of per-unit variance ``sigma2``; the
        interval excludes 0 exactly when the p-value is below ``alpha``."""
        h = half_width(sigma2, n, self.rho, self.level(n))
        mixture_p = always_valid_p_value(estimate, sigma2, n, self.rho)
        if not self.horizon:
            return h, mixture_p
        p = mixture_p / (1.0 - HORIZON_SHARE)
        if n <= self.planned_n:
            spent = horizon_p_value(mixture_p, self.mixing)
            p = min(p, spent / HORIZON_SHARE)
        return h, min(1.0, p)

    def compute(self, control: SampleStats, treatment: SampleStats) -> LiftResult:
        """CS and always-valid p-value for ``mean_t - mean_c`` (metric units).

        With ``N = n_c + n_t`` and the Welch variance ``V``, the per-unit variance is ``N V``.
        """
        error = _check(control, treatment)
        if error:
            return _nan(error)
        v = control.variance / control.n + treatment.variance / treatment.n
        n = float(control.n + treatment.n)
        diff = treatment.mean - control.mean
        h, p = self.bounds(diff, v * n, n)
        return LiftResult(diff, diff - h, diff + h, p)
