"""A/A and power harness for the anytime-valid CS, the group-sequential test and the sequential
SRM (seeded, vectorised).

Peeks every 500 units per arm up to 20,000 per arm on a 10% baseline binary metric.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from experiments.group_sequential import boundaries
from experiments.sequential import SequentialLift, mixture_boundary
from experiments.srm import SEQUENTIAL_SRM_ALPHA, anytime_srm_p_values

STEP, MAX_N, BASE, ALPHA = 500, 20_000, 0.10, 0.05


def _paths(rng: np.random.Generator, experiments: int, p: float) -> np.ndarray:
    looks = MAX_N // STEP
    return rng.binomial(STEP, p, (experiments, looks)).cumsum(axis=1).astype(float)


def _trial(
    rng: np.random.Generator,
    experiments: int,
    lift: float,
    tuned_for: float = 2.0 * MAX_N,
    horizon: bool = True,
) -> dict[str, float]:
    """Reject and stop rates of the anytime-valid CS (mixture tuned for ``tuned_for`` total
    units; with ``horizon``, spending on the plan of ``MAX_N`` per arm as reports do) and of the
    naive z-test, both peeked at every look."""
    looks = np.arange(1, MAX_N // STEP + 1) * STEP
    c = _paths(rng, experiments, BASE) / looks
    t = _paths(rng, experiments, BASE * (1 + lift)) / looks
    v = c * (1 - c) / looks + t * (1 - t) / looks
    z = (t - c) / np.sqrt(np.where(v > 0, v, np.inf))
    test = SequentialLift(ALPHA, tuned_for / 2.0, horizon=horizon)
    fraction = 2.0 * looks / test.planned_n
    # The standardised sum against the boundary is the interval excluding 0 (``bounds``).
    boundary = mixture_boundary(fraction, test.level(2.0 * MAX_N), test.mixing)
    seq = np.abs(z) * np.sqrt(fraction) >= boundary
    naive = np.abs(z) > stats.norm.ppf(1 - ALPHA / 2)
    stop = np.where(seq.any(axis=1), looks[np.argmax(seq, axis=1)], MAX_N)
    return {
        "anytime_valid_reject": float(seq.any(axis=1).mean()),
        "naive_peeking_reject": float(naive.any(axis=1).mean()),
        "anytime_valid_mean_stop_per_arm": float(stop.mean()),
    }


GS_LOOKS = 10  # pre-registered: every 2,000 units per arm up to 20,000


def _group_sequential(rng: np.random.Generator, experiments: int, lift: float) -> dict[str, float]:
    """Lan-DeMets O'Brien-Fleming-type test at ``GS_LOOKS`` equally spaced looks."""
    looks = np.arange(1, GS_LOOKS + 1) * (MAX_N // GS_LOOKS)
    every = (MAX_N // GS_LOOKS) // STEP
    c = _paths(rng, experiments, BASE)[:, every - 1 :: every] / looks
    t = _paths(rng, experiments, BASE * (1 + lift))[:, every - 1 :: every] / looks
    v = c * (1 - c) / looks + t * (1 - t) / looks
    z = (t - c) / np.sqrt(np.where(v > 0, v, np.inf))
    reject = np.abs(z) >= np.array(boundaries(list(looks / MAX_N), ALPHA))
    stop = np.where(reject.any(axis=1), looks[np.argmax(reject, axis=1)], MAX_N)
    return {
        "group_sequential_reject": float(reject.any(axis=1).mean()),
        "group_sequential_mean_stop_per_arm": float(stop.mean()),
    }


SRM_UNITS = 40_000


def _srm(rng: np.random.Generator, experiments: int, p: float) -> float:
    """Share of experiments whose anytime-valid SRM p-value (``experiments.srm``, the plan
    ``SRM_UNITS``) falls below its level at some look, every 1,000 units up to the plan."""
    looks = np.arange(1, SRM_UNITS // 1000 + 1) * 1000
    a = rng.binomial(1000, p, (experiments, looks.size)).cumsum(axis=1).astype(float)
    counts = np.stack([a, looks - a], axis=-1)
    p_values = anytime_srm_p_values(counts, np.array([0.5, 0.5]), SRM_UNITS)
    return float((p_values < SEQUENTIAL_SRM_ALPHA).any(axis=1).mean())


def run(seed: int, experiments: int = 2000) -> list[dict[str, float | str]]:
    """Rows of measured rates: A/A, +10% relative lift, SRM null and 49:51."""
    rng = np.random.default_rng(seed)
    aa = _trial(rng, experiments, 0.0)
    power = _trial(rng, experiments, 0.10)
    aa_gs = _group_sequential(rng, experiments, 0.0)
    power_gs = _group_sequential(rng, experiments, 0.10)
    # The plain mixture (no horizon), tuned for the plan's total and for others.
    sweep = {
        f"plain_mixture_reject_tuned_{total // 1000}k": _trial(
            rng, experiments, 0.10, total, horizon=False
        )["anytime_valid_reject"]
        for total in (20_000, 2 * MAX_N, 60_000)
    }
    plain_aa = _trial(rng, experiments, 0.0, horizon=False)["anytime_valid_reject"]
    return [
        {"scenario": "A/A", **aa, **aa_gs},
        {"scenario": "+10% relative", **power, **power_gs},
        {"scenario": "+10% relative, plain", **sweep},
        {"scenario": "A/A, plain", "plain_mixture_reject": plain_aa},
        {"scenario": "SRM 50:50 (false alarm)", "srm_alarm": _srm(rng, experiments, 0.5)},
        {"scenario": "SRM 49:51 (detection)", "srm_alarm": _srm(rng, experiments, 0.49)},
    ]


def format_table(rows: list[dict[str, float | str]]) -> str:
    """Plain-text table, one line per scenario and measure."""
    lines = [f"{'scenario':<26} {'measure':<34} {'value':>10}"]
    for row in rows:
        for key, value in row.items():
            if key != "scenario":
                lines.append(f"{row['scenario']!s:<26} {key:<34} {float(value):>10.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run(seed=2026)))
