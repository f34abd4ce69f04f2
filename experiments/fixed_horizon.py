"""Fixed-horizon intervals: Welch t (or z) for the absolute lift, delta method for the relative.

References
----------
Welch (1947), "The generalization of Student's problem". Delta method for a ratio of means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from experiments.statistics import SampleStats


@dataclass(frozen=True, slots=True)
class LiftResult:
    """Lift of treatment over control; ``error`` is set instead of raising on degenerate data."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    error: str | None = None


def _nan(error: str) -> LiftResult:
    n = float("nan")
    return LiftResult(n, n, n, n, error)


def _check(control: SampleStats, treatment: SampleStats) -> str | None:
    if control.n == 0 or treatment.n == 0:
        return "EMPTY_CELL"
    if control.n < 2 or treatment.n < 2:
        return "TOO_FEW_UNITS"
    if control.variance == 0.0 and treatment.variance == 0.0:
        return "ZERO_VARIANCE"
    return None


def absolute_lift(
    control: SampleStats,
    treatment: SampleStats,
    alpha: float = 0.05,
    distribution: Literal["t", "z"] = "t",
) -> LiftResult:
    """Difference of means with a Welch t (or z) interval, in metric units.

    ``se = sqrt(s_t^2/n_t + s_c^2/n_c)``; Welch-Satterthwaite degrees of freedom
    ``df = se^4 / sum((s_i^2/n_i)^2/(n_i-1))``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    error = _check(control, treatment)
    if error:
        return _nan(error)
    vc = control.variance / control.n
    vt = treatment.variance / treatment.n
    se = math.sqrt(vc + vt)
    diff = treatment.mean - control.mean
    if distribution == "t":
        df = (vc + vt) ** 2 / (vc**2 / (control.n - 1) + vt**2 / (treatment.n - 1))
        dist = stats.t(df)
    else:
        dist = stats.norm()
    q = float(dist.ppf(1 - alpha / 2))
    p = float(2 * dist.sf(abs(diff) / se))
    return LiftResult(diff, diff - q * se, diff + q * se, p)


def relative_lift(
    control: SampleStats,
    treatment: SampleStats,
    alpha: float = 0.05,
) -> LiftResult:
    """Relative lift ``mean_t / mean_c - 1`` with a delta-method z interval (a fraction).

    ``Var(m_t/m_c) ~ v_t/m_c^2 + m_t^2 v_c/m_c^4`` with ``v_i = s_i^2/n_i``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    error = _check(control, treatment)
    if error:
        return _nan(error)
    mc, mt = control.mean, treatment.mean
    if mc == 0.0:
        return _nan("ZERO_CONTROL_MEAN")
    vc = control.variance / control.n
    vt = treatment.variance / treatment.n
    se = math.sqrt(vt / mc**2 + mt**2 * vc / mc**4)
    if se == 0.0:  # a constant treatment cell whose mean is 0: no spread to scale the ratio by
        return _nan("ZERO_VARIANCE")
    est = mt / mc - 1
    q = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(est) / se))
    return LiftResult(est, est - q * se, est + q * se, p)
