"""The policy benchmark runs end to end on a small world and prints every table."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.policy_benchmark import POLICIES, build, main, make_world, run_policy


def test_common_random_numbers_make_runs_reproducible() -> None:
    world = make_world(3, 300)
    a = run_policy(build("linear-ts", 3), world, 3)
    b = run_policy(build("linear-ts", 3), world, 3)
    assert np.array_equal(a, b)


def test_learning_policy_beats_uniform_on_small_world() -> None:
    world = make_world(5, 3000)
    oracle = 1 / (1 + np.exp(-world.logits))
    best = oracle.max(axis=1).sum()
    uniform = best - run_policy(build("uniform", 5), world, 5).sum()
    ts = best - run_policy(build("linear-ts", 5), world, 5).sum()
    assert ts < 0.6 * uniform


def test_main_prints_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--rounds", "400", "--seeds", "1", "--policies", "uniform", "linucb", "vw-squarecb"])
    out = capsys.readouterr().out
    for label in ("uniform", "linucb", "vw-squarecb", "gamma_scale", "score_one", "ips"):
        assert label in out
    assert set(POLICIES) >= {"linucb", "linear-ts", "logistic-ts", "vw-squarecb"}
