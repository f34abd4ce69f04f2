"""Conformance suite: every registered policy passes the same checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bandits import PolicyError, available_policies, make_policy
from bandits.base import GreedyPolicy, Policy, mix_uniform, with_payoff

ACTIONS = {f"offer-{i}": {"kind": "card" if i % 2 else "loan", "rate": 0.1 * i} for i in range(6)}
CONTEXT = {"age": 41.0, "segment": "gold", "balance": 2.5}


def _train(policy: Policy, rounds: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        ctx = {"age": float(rng.normal()), "segment": str(rng.choice(["gold", "basic"]))}
        chosen = str(rng.choice(list(ACTIONS)))
        policy.learn_one(ctx, ACTIONS, chosen, float(rng.random() < 0.3), 1 / len(ACTIONS))


@pytest.mark.parametrize("name", available_policies())
def test_same_seed_same_probabilities(name: str) -> None:
    a, b = make_policy(name, seed=7), make_policy(name, seed=7)
    _train(a, 50, 1)
    _train(b, 50, 1)
    assert a.predict_proba_one(CONTEXT, ACTIONS) == b.predict_proba_one(CONTEXT, ACTIONS)


@pytest.mark.parametrize("name", available_policies())
def test_predict_has_no_side_effects(name: str) -> None:
    policy = make_policy(name, seed=3)
    _train(policy, 30, 2)
    first = policy.predict_proba_one(CONTEXT, ACTIONS)
    assert policy.predict_proba_one(CONTEXT, ACTIONS) == first


@pytest.mark.parametrize("name", available_policies())
def test_bytes_round_trip(name: str) -> None:
    policy = make_policy(name, seed=5)
    _train(policy, 40, 3)
    clone = type(policy).from_bytes(policy.to_bytes())
    assert clone.predict_proba_one(CONTEXT, ACTIONS) == policy.predict_proba_one(CONTEXT, ACTIONS)
    assert clone.score_one(CONTEXT, ACTIONS) == policy.score_one(CONTEXT, ACTIONS)


@pytest.mark.parametrize("name", available_policies())
@pytest.mark.parametrize("floor", [0.0, 0.02, 0.1])
def test_probabilities_sum_to_one_and_respect_floor(name: str, floor: float) -> None:
    policy = make_policy(name, seed=1, floor=floor)
    _train(policy, 60, 4)
    p = policy.predict_proba_one(CONTEXT, ACTIONS)
    assert set(p) == set(ACTIONS)
    assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)
    assert min(p.values()) >= floor - 1e-12


@pytest.mark.parametrize("name", available_policies())
def test_cold_start_missing_features_new_values_new_actions(name: str) -> None:
    policy = make_policy(name, seed=2)
    _train(policy, 20, 5)
    actions = {"brand-new": {"kind": "mortgage", "colour": "teal"}, "offer-1": {}}
    p = policy.predict_proba_one({"segment": "never-seen", "odd": None}, actions)
    assert set(p) == set(actions) and math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)
    policy.learn_one({}, actions, "brand-new", 1.0, 0.5)
    assert set(policy.predict_proba_one({}, actions)) == set(actions)


@pytest.mark.parametrize("name", available_policies())
def test_learning_moves_probability_to_better_action(name: str) -> None:
    if name == "uniform":  # uniform never learns: its probabilities must stay put instead
        policy = make_policy(name, seed=0)
        _train(policy, 10, 0)
        assert set(policy.predict_proba_one({}, {"a": {}, "b": {}}).values()) == {0.5}
        return
    policy = make_policy(name, seed=0)
    actions = {"bad": {"x": -1.0}, "good": {"x": 1.0}}  # ties go to "bad"
    ctx = {"f": 1.0}
    before = policy.predict_proba_one(ctx, actions)["good"]
    rng = np.random.default_rng(11)
    for _ in range(300):
        chosen = "good" if rng.random() < 0.5 else "bad"
        reward = float(rng.random() < (0.7 if chosen == "good" else 0.2))
        policy.learn_one(ctx, actions, chosen, reward, 0.5)
    after = policy.predict_proba_one(ctx, actions)["good"]
    assert after > before and after > 0.6


@pytest.mark.parametrize("name", available_policies())
def test_bad_feedback_rejected(name: str) -> None:
    policy = make_policy(name, seed=0)
    with pytest.raises(PolicyError, match="reward"):
        policy.learn_one(CONTEXT, ACTIONS, "offer-0", float("nan"), 0.5)
    for bad in (0.0, 1.5, -0.1, float("nan")):
        with pytest.raises(PolicyError, match="propensity"):
            policy.learn_one(CONTEXT, ACTIONS, "offer-0", 1.0, bad)


@pytest.mark.parametrize("name", available_policies())
def test_bad_parameters_name_themselves(name: str) -> None:
    with pytest.raises(PolicyError, match="floor"):
        make_policy(name, floor=1.5)
    with pytest.raises(PolicyError, match="params"):
        make_policy(name, no_such_parameter=1)


def test_unknown_policy_name() -> None:
    with pytest.raises(PolicyError, match="name"):
        make_policy("no-such-policy")


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [
        ("linucb", "alpha", -1.0),
        ("linucb", "temperature", 0.0),
        ("linear-ts", "v", 0.0),
        ("linear-ts", "n_draws", 0),
        ("epsilon-greedy", "epsilon", 1.5),
        ("linucb", "l2", 0.0),
        ("linucb", "dim", 2),
    ],
)
def test_out_of_range_parameter_named(name: str, param: str, value: float) -> None:
    with pytest.raises(PolicyError, match=param):
        make_policy(name, **{param: value})


# Policies that judge their exploration on the arbitration's payoff (VW explores over the costs
# it learnt, uniform over nothing: both ignore it by design).
PAYOFF_AWARE = [n for n in available_policies() if n not in ("vw", "uniform")]


@pytest.mark.parametrize("name", available_policies())
def test_identity_payoff_changes_nothing_and_any_payoff_is_a_distribution(name: str) -> None:
    policy = make_policy(name, seed=2, floor=0.02)
    _train(policy, 60, 6)
    identity = dict.fromkeys(ACTIONS, (1.0, 0.0))
    plain = policy.predict_proba_one(CONTEXT, ACTIONS)
    assert policy.predict_proba_one(CONTEXT, ACTIONS, identity) == pytest.approx(plain)
    money = {a: (100.0 * (i + 1), -5.0 * i) for i, a in enumerate(ACTIONS)}
    p = policy.predict_proba_one(CONTEXT, ACTIONS, money)
    assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)
    assert min(p.values()) >= 0.02 - 1e-12


@pytest.mark.parametrize("name", PAYOFF_AWARE)
def test_a_payoff_moves_probability_to_the_action_worth_most(name: str) -> None:
    """Same beliefs, one action whose payoff beats any other's whatever P(accept) (an offset of
    +50 where P(accept) <= 1 earns at most 1) and one that always loses: the choice follows
    the money."""
    policy = make_policy(name, seed=4, floor=0.01)
    _train(policy, 60, 7)
    plain = policy.predict_proba_one(CONTEXT, ACTIONS)
    least, favourite = min(plain, key=plain.__getitem__), max(plain, key=plain.__getitem__)
    payoff = dict.fromkeys(ACTIONS, (1.0, 0.0))
    payoff[least] = (1.0, 50.0)
    payoff[favourite] = (1.0, -50.0)
    weighted = policy.predict_proba_one(CONTEXT, ACTIONS, payoff)
    assert weighted[least] > 0.5 > plain[least]
    assert weighted[favourite] == pytest.approx(min(weighted.values()))


@pytest.mark.parametrize("name", ["linear-ts", "logistic-ts"])
def test_thompson_draws_are_a_cache_not_state(name: str) -> None:
    policy = make_policy(name, seed=9)
    _train(policy, 20, 8)
    three = dict(list(ACTIONS.items())[:3])
    policy.predict_proba_one(CONTEXT, three)  # the featurizer has seen CONTEXT (and caches it)
    before = policy.to_bytes()
    first = policy.predict_proba_one(CONTEXT, ACTIONS)  # new draws for six candidates
    assert policy.to_bytes() == before
    assert type(policy).from_bytes(before).predict_proba_one(CONTEXT, ACTIONS) == first
    _train(policy, 1, 9)  # a new snapshot draws anew
    assert policy.predict_proba_one(CONTEXT, ACTIONS) != first


@pytest.mark.parametrize("name", ["linear-ts", "logistic-ts"])
def test_snapshots_from_before_the_draw_cache_still_predict(name: str) -> None:
    policy = make_policy(name, seed=9)
    _train(policy, 20, 8)
    expected = policy.predict_proba_one(CONTEXT, ACTIONS)
    vars(policy).pop("_normals")  # as a policy pickled before the cache existed
    old = type(policy).from_bytes(policy.to_bytes())
    assert "_normals" not in vars(old)
    assert old.predict_proba_one(CONTEXT, ACTIONS) == expected


@pytest.mark.parametrize("name", available_policies())
def test_a_slate_asks_for_what_predict_proba_one_gives_on_each_subset(name: str) -> None:
    policy = make_policy(name, seed=6, floor=0.01)
    _train(policy, 40, 7)
    payoff = {a: (1.0 + i, 10.0 * i) for i, a in enumerate(ACTIONS)}  # the later, the better
    over = policy.slate_distribution(CONTEXT, ACTIONS, payoff)
    names = list(ACTIONS)
    for remaining in (names, names[1:], names[::2], names[3:4]):
        subset = {a: ACTIONS[a] for a in remaining}
        expected = policy.predict_proba_one(CONTEXT, subset, payoff)
        assert list(over(remaining)) == remaining
        assert over(remaining) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", available_policies())
def test_a_slate_with_epsilon_is_its_distribution_mixed_with_uniform_exploration(
    name: str,
) -> None:
    policy = make_policy(name, seed=6, floor=0.01)
    _train(policy, 40, 7)
    payoff = {a: (1.0 + i, 10.0 * i) for i, a in enumerate(ACTIONS)}
    plain = policy.slate_distribution(CONTEXT, ACTIONS, payoff)
    mixed = policy.slate_distribution(CONTEXT, ACTIONS, payoff, epsilon=0.3)
    names = list(ACTIONS)
    for remaining in (names, names[1:], names[::2], names[3:4]):
        expected = mix_uniform(plain(remaining), 0.3)
        assert list(mixed(remaining)) == remaining
        assert mixed(remaining) == pytest.approx(expected, abs=1e-12)
        assert sum(mixed(remaining).values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", available_policies())
def test_a_slate_given_the_priorities_asks_for_the_same_and_scores_no_more(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = make_policy(name, seed=6, floor=0.01)
    _train(policy, 40, 7)
    payoff = {a: (1.0 + i, 10.0 * i) for i, a in enumerate(ACTIONS)}
    names = list(ACTIONS)
    subsets = (names, names[1:], names[::2], names[3:4])
    without = policy.slate_distribution(CONTEXT, ACTIONS, payoff)
    expected = [without(remaining) for remaining in subsets]
    priorities = with_payoff(policy.score_one(CONTEXT, ACTIONS), payoff)
    if isinstance(policy, GreedyPolicy):  # it draws on its point estimates: those given
        monkeypatch.setattr(policy, "score_one", lambda *_: pytest.fail("scored again"))
    given = policy.slate_distribution(CONTEXT, ACTIONS, payoff, priorities)
    for remaining, probabilities in zip(subsets, expected, strict=True):
        assert given(remaining) == pytest.approx(probabilities, abs=1e-12)
