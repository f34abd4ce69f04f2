"""Off-policy estimators: closed forms, bad input, simulated truth, and the Open Bandit Dataset."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bandits import PolicyError
from bandits.evaluation import doubly_robust, ips, snips
from simulations.policy_benchmark import ope_check

OBD = Path("/work/shared/data/obd")


def _arrays(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(n) < 0.3, rng.uniform(0.05, 1.0, n), rng.random(n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimators_match_their_formulas(seed: int) -> None:
    r, p, t = _arrays(seed)
    r = r.astype(float)
    w = t / p
    assert ips(r, p, t).value == pytest.approx(float(np.mean(w * r)))
    assert snips(r, p, t).value == pytest.approx(float(np.sum(w * r) / np.sum(w)))
    q = np.full(len(r), 0.25)
    direct = np.full(len(r), 0.2)
    assert doubly_robust(r, p, t, direct, q).value == pytest.approx(
        float(np.mean(direct + w * (r - q)))
    )
    est = ips(r, p, t)
    assert est.ess == pytest.approx(float(w.sum() ** 2 / (w**2).sum()))
    assert est.ci_low < est.value < est.ci_high
    assert est.stderr == pytest.approx(float(np.std(w * r, ddof=1) / np.sqrt(len(r))))


def test_bad_input_is_named() -> None:
    r, p, t = _arrays(0, 10)
    bad_r = r.astype(float)
    bad_r[3] = np.nan
    with pytest.raises(PolicyError, match="reward"):
        ips(bad_r, p, t)
    bad_p = p.copy()
    bad_p[0] = 0.0
    with pytest.raises(PolicyError, match="propensity"):
        snips(r.astype(float), bad_p, t)


def test_empty_log_returns_an_error_code() -> None:
    empty = np.zeros(0)
    assert ips(empty, empty, empty).error == "empty log"


def test_simulated_uniform_log_covers_truth() -> None:
    truth, est = ope_check(seed=4, rounds=8000)
    # 8,000 uniform rounds over 20 offers: ~400 effective rounds for a greedy target.
    for name in ("ips", "dr"):
        assert abs(est[name] - truth) / truth < 0.35, (name, est[name], truth)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_simulated_uniform_log_relative_error_within_10_percent(seed: int) -> None:
    truth, est = ope_check(seed=seed, rounds=50_000)
    for name in ("ips", "dr"):
        assert abs(est[name] - truth) / truth <= 0.10, (name, est[name], truth)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_open_bandit_dataset_bts_value_from_random_log() -> None:
    random_log = _read(OBD / "random" / "all.csv")
    bts_log = _read(OBD / "bts" / "all.csv")
    # Evaluation policy: the BTS campaign's item x position frequencies.
    pair = Counter((row["item_id"], row["position"]) for row in bts_log)
    per_position = Counter(row["position"] for row in bts_log)
    target = np.array(
        [pair[(r["item_id"], r["position"])] / per_position[r["position"]] for r in random_log]
    )
    click = np.array([float(r["click"]) for r in random_log])
    prop = np.array([float(r["propensity_score"]) for r in random_log])
    # Closed forms, written independently of the estimators: sums over the rows.
    n = len(random_log)
    ips_closed = sum(c * t / p for c, t, p in zip(click, target, prop, strict=True)) / n
    snips_closed = sum(c * t / p for c, t, p in zip(click, target, prop, strict=True)) / sum(
        t / p for t, p in zip(target, prop, strict=True)
    )
    q = sum(click) / n  # constant reward model: DR = q + mean(w (r - q))
    dr_closed = q + sum(t / p * (c - q) for c, t, p in zip(click, target, prop, strict=True)) / n
    assert ips(click, prop, target).value == pytest.approx(ips_closed, rel=1e-9)
    assert snips(click, prop, target).value == pytest.approx(snips_closed, rel=1e-9)
    assert doubly_robust(click, prop, target, np.full(n, q), np.full(n, q)).value == (
        pytest.approx(dr_closed, rel=1e-9)
    )
    # The BTS log's own click rate lies within the IPS interval from the random log.
    est = ips(click, prop, target)
    bts_ctr = float(np.mean([float(r["click"]) for r in bts_log]))
    assert est.ci_low <= bts_ctr <= est.ci_high
    assert 0 < est.ess <= n
