"""Experiments: assignment, design, and the pure statistics of analysis."""

from experiments.cuped import cuped, pooled_theta
from experiments.fixed_horizon import LiftResult, absolute_lift, relative_lift
from experiments.multiple_testing import benjamini_hochberg, holm
from experiments.sequential import SequentialLift, always_valid_p_value, optimal_rho
from experiments.srm import SrmResult, chi_square_srm
from experiments.statistics import RegressionStats, SampleStats

__all__ = [
    "LiftResult",
    "RegressionStats",
    "SampleStats",
    "SequentialLift",
    "SrmResult",
    "absolute_lift",
    "always_valid_p_value",
    "benjamini_hochberg",
    "chi_square_srm",
    "cuped",
    "holm",
    "optimal_rho",
    "pooled_theta",
    "relative_lift",
]
