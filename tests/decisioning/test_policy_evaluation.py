"""``decisioning evaluate``: off-policy estimates of a policy on the engine's own decision log."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from bandits.evaluation import ips
from decisioning.cli import main
from decisioning.domain import DecisionRequest
from decisioning.engine import DecisionEngine
from decisioning.learning import Learner, RewardDefinition
from decisioning.policy_evaluation import evaluate_log, load_logged_rounds
from tests.conftest import open_engine
from tests.support import NOW, configure, offer, send_outcome

ACCEPT_RATE = {"card": 0.6, "loan": 0.2, "fund": 0.05}
REWARD = RewardDefinition("accept", timedelta(hours=1))
DECISIONS = 300


def _uniform_log(url: str) -> DecisionEngine:
    """``DECISIONS`` uniform-random decisions a minute apart, accepted at ``ACCEPT_RATE``."""
    engine = open_engine(url, epsilon=1.0)
    configure(engine, [offer(o, value=100.0) for o in ACCEPT_RATE])
    rng = np.random.default_rng(7)
    for i in range(DECISIONS):
        at = NOW + timedelta(minutes=i)
        decision = engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=at)
        shown = decision.offers[0].offer_id
        if rng.random() < ACCEPT_RATE[shown]:
            send_outcome(engine, f"e-{i}", decision.decision_id, shown, "accept", at)
    return engine


def test_only_closed_decisions_rank_one_with_their_logged_propensity(sqlite_url: str) -> None:
    engine = _uniform_log(sqlite_url)
    until = NOW + timedelta(minutes=DECISIONS // 2)
    rounds = load_logged_rounds(engine, REWARD, None, until)
    # Decisions at minutes 0..(150 - 60) have closed their one-hour window, the last one in
    # ``until``'s very millisecond: it waits (the cursor never stops inside a millisecond).
    assert len(rounds) == DECISIONS // 2 - 60
    assert all(r.propensity == pytest.approx(1 / 3) for r in rounds)
    assert {r.chosen for r in rounds} == set(ACCEPT_RATE)
    assert set(rounds[0].actions) == set(ACCEPT_RATE)
    later = load_logged_rounds(engine, REWARD, NOW + timedelta(minutes=50), until)
    assert len(later) == len(rounds) - 50  # since is inclusive


def test_estimates_match_the_closed_forms_on_a_uniform_log(sqlite_url: str) -> None:
    engine = _uniform_log(sqlite_url)
    until = NOW + timedelta(days=1)
    rounds = load_logged_rounds(engine, REWARD, None, until)
    # Uniform target on a uniform log: every importance weight is 1, IPS is the logged mean.
    uniform = evaluate_log(engine, "uniform", REWARD, since=None, until=until, snapshot="fresh")
    assert uniform.rounds == DECISIONS
    assert uniform.estimates["ips"].value == pytest.approx(uniform.logged_value, abs=1e-12)
    assert uniform.estimates["snips"].value == pytest.approx(uniform.logged_value, abs=1e-12)
    # A trained policy: IPS is mean(pi(a|x) / p * r), computed here from the rounds themselves.
    Learner(engine, "beta-bernoulli", default_reward=REWARD).run_once(now=until)
    trained = evaluate_log(engine, "beta-bernoulli", REWARD, since=None, until=until)
    assert trained.policy_version == 1
    policy = engine.policies.current("beta-bernoulli")[0]
    target = np.array([policy.predict_proba_one(r.context, r.actions)[r.chosen] for r in rounds])
    reward = np.array([r.reward for r in rounds])
    propensity = np.array([r.propensity for r in rounds])
    expected = ips(reward, propensity, target)
    assert trained.estimates["ips"].value == pytest.approx(expected.value, rel=1e-9)
    # The trained policy favours the card (0.6) over a uniform choice (mean 0.28).
    assert trained.estimates["snips"].value > uniform.estimates["snips"].value


def test_command_prints_the_table_and_names_bad_options(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _uniform_log(sqlite_url)
    monkeypatch.setenv("DECISIONING_DATABASE_URL", sqlite_url)
    args = ["evaluate", "--policy", "uniform", "--reward", "accept", "--window-hours", "1"]
    assert main([*args, "--snapshot", "fresh"]) == 0
    out = capsys.readouterr().out
    assert f"on {DECISIONS} logged decisions" in out
    assert {line.split()[0] for line in out.splitlines()[2:]} == {"ips", "snips", "dr"}
    assert main(["evaluate", "--policy", "no-such-policy"]) == 2
    assert "--policy" in capsys.readouterr().err
    assert main([*args, "--snapshot", "fresh", "--params", '{"floor": 2}']) == 2
    assert "--params" in capsys.readouterr().err
    assert main([*args, "--params", "[1]"]) == 2
    assert "--params: must be a JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--since", "yesterday"])
