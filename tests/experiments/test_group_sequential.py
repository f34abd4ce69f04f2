"""Lan-DeMets group-sequential boundaries: published values, and type I error by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.group_sequential import boundaries, decide_at, spent

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]


def test_obrien_fleming_type_matches_the_published_boundaries() -> None:
    # Two-sided alpha 0.05, five equally spaced looks (rpact getDesignGroupSequential(kMax = 5,
    # alpha = 0.025, typeOfDesign = "asOF"), gsDesign sfLDOF; Jennison & Turnbull 2000).
    expected = [4.8769, 3.3569, 2.6803, 2.2898, 2.0310]
    assert boundaries(FIVE) == pytest.approx(expected, abs=2e-3)


def test_pocock_type_matches_the_published_boundaries() -> None:
    expected = [2.4380, 2.4268, 2.4101, 2.3966, 2.3859]  # rpact typeOfDesign = "asP"
    assert boundaries(FIVE, spending="pocock") == pytest.approx(expected, abs=2e-3)


def test_one_look_is_the_fixed_horizon_test() -> None:
    assert boundaries([1.0]) == pytest.approx([1.959964], abs=1e-5)
    assert spent(1.0, 0.05) == pytest.approx(0.05)
    assert spent(1.0, 0.05, "pocock") == pytest.approx(0.05)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_type_i_error_by_simulation(spending: str) -> None:
    """200,000 seeded Brownian paths under H0 looked at 8 unequally spaced times."""
    fractions = [0.1, 0.2, 0.35, 0.5, 0.6, 0.75, 0.9, 1.0]
    c = np.array(boundaries(fractions, spending=spending))  # type: ignore[arg-type]
    rng = np.random.default_rng(17)
    steps = np.diff([0.0, *fractions])
    paths = np.cumsum(rng.standard_normal((200_000, len(fractions))) * np.sqrt(steps), axis=1)
    z = paths / np.sqrt(fractions)
    rejected = (np.abs(z) >= c).any(axis=1).mean()
    assert abs(rejected - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 200_000)


def test_decisions_at_the_latest_look_reached() -> None:
    early = decide_at(5.0, units_per_cell=100, planned_per_cell=1000, looks=5)
    assert early.error == "NO_LOOK_YET" and not early.reject
    second = decide_at(3.0, units_per_cell=450, planned_per_cell=1000, looks=5)
    assert second.look == 2 and second.boundary == pytest.approx(3.357, abs=2e-3)
    assert not second.reject  # 3.0 < 3.357
    last = decide_at(2.1, units_per_cell=1200, planned_per_cell=1000, looks=5)
    assert last.look == 5 and last.reject


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="alpha"):
        boundaries(FIVE, alpha=0.0)
    with pytest.raises(ValueError, match="fractions"):
        boundaries([0.5, 0.4])
    with pytest.raises(ValueError, match="spending"):
        spent(0.5, 0.05, "linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="looks"):
        decide_at(1.0, 10, 10, looks=0)
