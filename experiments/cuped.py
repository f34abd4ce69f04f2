"""CUPED: variance reduction with a pre-exposure covariate, from summable sums.

References
----------
Deng, Xu, Kohavi, Walker (2013), "Improving the sensitivity of online controlled experiments by
utilizing pre-experiment data", eq. (3)-(4): ``y_cv = y - theta (x - mean(x))``,
``theta = cov(x, y) / var(x)``, pooled over cells so the adjustment is the same in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from operator import add

from experiments.statistics import RegressionStats, SampleStats


def pooled_theta(cells: Sequence[RegressionStats]) -> float:
    """``theta = cov(x, y) / var(x)`` pooled over cells (Deng et al. 2013, eq. 4)."""
    if not cells:
        raise ValueError("cells must not be empty")
    pooled = reduce(add, cells)
    var_x = pooled.x.variance
    if not var_x > 0.0:
        return 0.0
    return pooled.covariance / var_x


def adjust(cell: RegressionStats, theta: float, mean_x: float) -> SampleStats:
    """Sufficient statistics of ``y - theta (x - mean_x)`` in one cell (Deng et al. 2013, eq. 3)."""
    n = cell.n
    s = cell.sum_y - theta * (cell.sum_x - n * mean_x)
    # sum (y - theta x + theta m)^2 expanded in the stored sums
    c = theta * mean_x
    ss = (
        cell.sum_y2
        + theta**2 * cell.sum_x2
        + n * c**2
        - 2 * theta * cell.sum_xy
        + 2 * c * cell.sum_y
        - 2 * theta * c * cell.sum_x
    )
    return SampleStats(n, s, ss)


def cuped(cells: Sequence[RegressionStats]) -> list[SampleStats]:
    """CUPED-adjusted statistics of every cell, with a pooled theta and pooled mean of x."""
    theta = pooled_theta(cells)
    pooled = reduce(add, cells)
    return [adjust(c, theta, pooled.x.mean) for c in cells]
