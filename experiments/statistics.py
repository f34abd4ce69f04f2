"""Summable sufficient statistics of one metric in one cell.

References
----------
Deng, Xu, Kohavi, Walker (2013), "Improving the sensitivity of online controlled experiments by
utilizing pre-experiment data" (the cross sums CUPED needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True, slots=True)
class SampleStats:
    """``n`` units, ``sum`` and ``sum_squares`` of the metric (metric units, squared)."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")

    def __add__(self, other: SampleStats) -> SampleStats:
        return SampleStats(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    @classmethod
    def from_values(cls, values: ArrayLike) -> SampleStats:
        """Statistics of ``values``, shape (n,)."""
        y = np.asarray(values, dtype=float).ravel()
        return cls(int(y.size), float(y.sum()), float(np.dot(y, y)))

    @property
    def mean(self) -> float:
        """Sample mean; nan when empty."""
        return self.sum / self.n if self.n > 0 else float("nan")

    @property
    def variance(self) -> float:
        """Unbiased sample variance (ddof=1); nan when n < 2."""
        if self.n < 2:
            return float("nan")
        return max(0.0, (self.sum_squares - self.sum**2 / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class RegressionStats:
    """Sums of covariate ``x`` (pre-exposure) and metric ``y`` for CUPED."""

    n: int
    sum_x: float
    sum_y: float
    sum_x2: float
    sum_y2: float
    sum_xy: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")

    def __add__(self, other: RegressionStats) -> RegressionStats:
        return RegressionStats(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_y + other.sum_y,
            self.sum_x2 + other.sum_x2,
            self.sum_y2 + other.sum_y2,
            self.sum_xy + other.sum_xy,
        )

    @classmethod
    def from_values(cls, x: ArrayLike, y: ArrayLike) -> RegressionStats:
        """Statistics of paired ``x`` and ``y``, each shape (n,)."""
        xa = np.asarray(x, dtype=float).ravel()
        ya = np.asarray(y, dtype=float).ravel()
        if xa.shape != ya.shape:
            raise ValueError(f"x and y must have the same shape, got {xa.shape} and {ya.shape}")
        return cls(
            int(ya.size),
            float(xa.sum()),
            float(ya.sum()),
            float(np.dot(xa, xa)),
            float(np.dot(ya, ya)),
            float(np.dot(xa, ya)),
        )

    @property
    def y(self) -> SampleStats:
        """The metric alone."""
        return SampleStats(self.n, self.sum_y, self.sum_y2)

    @property
    def x(self) -> SampleStats:
        """The covariate alone."""
        return SampleStats(self.n, self.sum_x, self.sum_x2)

    @property
    def covariance(self) -> float:
        """Sample covariance of x and y (ddof=1); nan when n < 2."""
        if self.n < 2:
            return float("nan")
        return (self.sum_xy - self.sum_x * self.sum_y / self.n) / (self.n - 1)
