"""The engine's default policy: its scores are the Beta posterior means, however it is used."""

from __future__ import annotations

import pytest

from bandits import make_policy
from bandits.base import Policy

ACTIONS = {"a": {}, "b": {}, "new": {}}


def test_scores_follow_every_update_as_the_closed_form_posterior_mean() -> None:
    policy = make_policy("beta-bernoulli", prior_alpha=1.0, prior_beta=19.0)
    assert policy.score_one({}, ACTIONS) == pytest.approx(dict.fromkeys(ACTIONS, 1 / 20))
    for reward in (1.0, 0.0, 1.0):  # scored between updates: what it remembers must follow
        policy.learn_one({}, ACTIONS, "a", reward, 0.5)
        policy.score_one({}, ACTIONS)
    policy.learn_one({}, ACTIONS, "b", 0.0, 0.5)
    # Beta(1 + successes, 19 + failures): mean (1 + s) / (20 + n)
    assert policy.score_one({}, ACTIONS) == pytest.approx(
        {"a": (1 + 2) / (20 + 3), "b": 1 / (20 + 1), "new": 1 / 20}
    )


def test_a_snapshot_from_before_the_cache_of_means_scores_the_same() -> None:
    policy = make_policy("beta-bernoulli")
    policy.learn_one({}, ACTIONS, "a", 1.0, 0.5)
    expected = policy.score_one({}, ACTIONS)
    del policy._means  # type: ignore[attr-defined]  # as pickled by an earlier release
    clone = Policy.from_bytes(policy.to_bytes())
    assert clone.score_one({}, ACTIONS) == expected
