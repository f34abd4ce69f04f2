"""Group-sequential boundaries with Lan-DeMets alpha spending, for pre-registered looks.

At look ``k`` (information fraction ``t_k`` in (0, 1], the share of the planned units seen) the
two-sided test rejects when ``|Z_k| >= c_k``. The boundaries spend the type I error as the
spending function allows: ``P_H0(reject at one of the first k looks) = alpha(t_k)``. Under H0
the score ``S_k = Z_k sqrt(t_k)`` is a Brownian motion at the looks, so the chance of continuing
to look ``k`` is computed exactly by numerical integration of its density on a grid, look after
look (Armitage, McPherson & Rowe 1969), and ``c_k`` is the root that spends the increment.

References
----------
Lan & DeMets (1983), "Discrete sequential boundaries for clinical trials", Biometrika 70,
eq. (1.3) (O'Brien-Fleming-type spending, per side ``2 - 2 Phi(z_{alpha/4} / sqrt(t))`` for a
two-sided level ``alpha``) and the Pocock-type ``alpha log(1 + (e - 1) t)``; Armitage,
McPherson & Rowe (1969), "Repeated significance tests on accumulating data", JRSS A 132 (the
recursion); Jennison & Turnbull (2000), "Group Sequential Methods" (boundaries to check against).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

Spending = Literal["obrien-fleming", "pocock"]
GRID_POINTS = 801  # per look: the integral is exact to about 1e-6 at this resolution


def spent(t: float, alpha: float, spending: Spending = "obrien-fleming") -> float:
    """Two-sided type I error spent by information fraction ``t`` in [0, 1]; each side spends
    half (the symmetric two-sided designs of gsDesign and rpact)."""
    if t <= 0.0:
        return 0.0
    t = min(t, 1.0)
    if spending == "obrien-fleming":
        side = 2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 4.0) / math.sqrt(t))
        return float(2.0 * side)
    if spending == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    raise ValueError(f"spending must be 'obrien-fleming' or 'pocock', got {spending!r}")


def boundaries(
    fractions: Sequence[float], alpha: float = 0.05, spending: Spending = "obrien-fleming"
) -> list[float]:
    """Two-sided critical values ``c_k`` of ``|Z|`` at the looks ``fractions`` (increasing)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    t = np.asarray(fractions, dtype=float)
    if t.size == 0 or np.any(t <= 0) or np.any(t > 1) or np.any(np.diff(t) <= 0):
        raise ValueError("fractions must increase within (0, 1]")
    critical: list[float] = []
    grid = np.zeros(0)  # values of S at the previous look that continued
    density = np.zeros(0)  # their (sub-)density
    previous_t = 0.0
    for k, tk in enumerate(t):
        target = spent(float(tk), alpha, spending) - spent(previous_t, alpha, spending)
        sd = math.sqrt(tk - previous_t)
        arguments = (float(tk), sd, grid, density, target)
        c = (
            float(optimize.brentq(_crossing, 0.1, 40.0, args=arguments, xtol=1e-10))
            if target > 0.0
            else math.inf
        )
        critical.append(c)
        # The density of S_k on the continuation region (-c sqrt(t_k), c sqrt(t_k)).
        edge = (c if math.isfinite(c) else 40.0) * math.sqrt(tk)
        new_grid = np.linspace(-edge, edge, GRID_POINTS)
        if k == 0:
            new_density = stats.norm.pdf(new_grid / sd) / sd
        else:
            kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / sd) / sd
            new_density = np.trapezoid(kernel * density[None, :], grid, axis=1)
        grid, density, previous_t = new_grid, new_density, float(tk)
    return critical


def _crossing(
    c: float, t: float, sd: float, grid: np.ndarray, density: np.ndarray, target: float
) -> float:
    """P(|S_t| >= c sqrt(t), no earlier crossing) minus ``target``: the continuing paths'
    density on ``grid`` (empty at the first look: a point mass at 0) moved by an
    ``N(0, sd^2)`` increment."""
    edge = c * math.sqrt(t)
    if grid.size == 0:
        return float(2.0 * stats.norm.sf(edge / sd)) - target
    tail = stats.norm.sf((edge - grid) / sd) + stats.norm.cdf((-edge - grid) / sd)
    return float(np.trapezoid(density * tail, grid)) - target


@dataclass(frozen=True, slots=True)
class GroupSequentialResult:
    """The decision at the latest look reached: its index (1-based), fraction and boundary."""

    look: int
    fraction: float
    boundary: float
    z: float
    reject: bool
    error: str | None = None


def decide_at(
    z: float,
    units_per_cell: float,
    planned_per_cell: float,
    looks: int,
    alpha: float = 0.05,
    spending: Spending = "obrien-fleming",
) -> GroupSequentialResult:
    """The test at the latest of ``looks`` equally spaced pre-registered looks reached by
    ``units_per_cell`` (no look yet: no decision, error ``NO_LOOK_YET``)."""
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    fractions = [(j + 1) / looks for j in range(looks)]
    reached = [f for f in fractions if f * planned_per_cell <= units_per_cell]
    if not reached or not math.isfinite(z):
        nan = float("nan")
        return GroupSequentialResult(0, nan, nan, z, False, "NO_LOOK_YET")
    c = boundaries(reached, alpha, spending)[-1]
    return GroupSequentialResult(len(reached), reached[-1], c, z, abs(z) >= c)
