"""CUPED against a direct OLS on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.cuped import cuped, pooled_theta
from experiments.statistics import RegressionStats, SampleStats


def test_cuped_matches_ols_and_reduces_variance() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(10, 3, 4000)
    y = 2 + 0.8 * x + rng.normal(0, 1, 4000)
    a, b = (
        RegressionStats.from_values(x[:2000], y[:2000]),
        RegressionStats.from_values(x[2000:], y[2000:]),
    )
    design = np.column_stack([np.ones_like(x), x])
    slope = np.linalg.lstsq(design, y, rcond=None)[0][1]
    theta = pooled_theta([a, b])
    assert theta == pytest.approx(slope, rel=1e-9)
    adjusted = cuped([a, b])
    direct = y[:2000] - slope * (x[:2000] - x.mean())
    ref = SampleStats.from_values(direct)
    assert adjusted[0].mean == pytest.approx(ref.mean, rel=1e-9)
    assert adjusted[0].variance == pytest.approx(ref.variance, rel=1e-6)
    assert adjusted[0].variance < 0.2 * a.y.variance
