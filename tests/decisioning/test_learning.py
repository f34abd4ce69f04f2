"""The learner replays closed decisions with their rewards, publishes numbered snapshots, and the
engine decides with the newest one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from decisioning.domain import DecisionRequest
from decisioning.errors import InvalidInput
from decisioning.learning import Learner, RewardDefinition, run_periodic_jobs
from decisioning.sql.tables import policy_snapshots
from tests.conftest import open_engine
from tests.support import NOW, configure, offer, run_in_processes, send_outcome


def test_reward_definitions() -> None:
    at = NOW
    late = NOW + timedelta(hours=30)
    accept = RewardDefinition("accept", timedelta(hours=24))
    assert accept.reward([("click", 0.0, at)], at, 1.0) == 0.0
    assert accept.reward([("accept", 0.0, at)], at, 1.0) == 1.0
    assert accept.reward([("accept", 0.0, late)], at, 1.0) == 0.0  # outside the window
    value = RewardDefinition("value_minus_cost", timedelta(hours=48))
    assert value.reward([("convert", 120.0, at), ("convert", 30.0, late)], at, 2.0) == 148.0
    with pytest.raises(InvalidInput):
        RewardDefinition("accept", timedelta(0))


def test_learner_moves_the_engine_toward_the_accepted_offer(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, epsilon=0.5)
    configure(engine, [offer("loved", value=100.0), offer("ignored", value=100.0)])
    learner = Learner(
        engine, "beta-bernoulli", default_reward=RewardDefinition("accept", timedelta(hours=1))
    )
    for i in range(200):
        at = NOW + timedelta(minutes=i)
        decision = engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=at)
        shown = decision.offers[0].offer_id
        if shown == "loved":
            send_outcome(engine, f"e-{i}", decision.decision_id, shown, "accept", at)
    assert learner.run_once(now=NOW + timedelta(minutes=30)) == 0  # no window has closed yet
    # Minutes 0..39 have closed; minute 40's window closes in this very millisecond, so its
    # decision waits for the next run (the cursor never stops inside a millisecond).
    assert learner.run_once(now=NOW + timedelta(minutes=100)) == 40
    assert learner.run_once(now=NOW + timedelta(hours=10)) == 160  # each decision once ...
    assert learner.run_once(now=NOW + timedelta(hours=11)) == 0  # ... and is not learnt again
    engine.policies.invalidate()
    policy, version = engine.policies.current("beta-bernoulli")
    assert version >= 1
    scores = policy.score_one({}, {"loved": {}, "ignored": {}})
    assert scores["loved"] > 0.5 > scores["ignored"]
    decision = engine.decide(
        DecisionRequest("c-new", "app_banner", context={}), now=NOW + timedelta(hours=12)
    )
    assert decision.policy_version == version


def test_the_cursor_never_skips_decisions_that_share_a_millisecond(sqlite_url: str) -> None:
    """The ids of one millisecond are in random order: a run whose horizon falls inside that
    millisecond learns none of its decisions, and a later run learns each of them once, also
    across batches. Decisions logged out of time order are learnt too."""
    engine = open_engine(sqlite_url)
    configure(engine, [offer("a"), offer("b")])
    window = timedelta(minutes=1)
    learner = Learner(
        engine, "beta-bernoulli", default_reward=RewardDefinition("accept", window), batch_size=7
    )
    start = NOW + timedelta(microseconds=200)
    for i in range(30):  # 30 decisions within one millisecond, logged latest first
        at = start + timedelta(microseconds=(29 - i) * 20)
        engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=at)
    engine.decide(DecisionRequest("c-early", "app_banner", context={}), now=NOW - window)
    assert learner.run_once(now=start + window + timedelta(microseconds=300)) == 1  # c-early
    assert learner.run_once(now=NOW + window + timedelta(milliseconds=1)) == 30
    assert learner.run_once(now=NOW + timedelta(hours=1)) == 0


def _periodic_worker(url: str, seed: int, start: Any, results: Any) -> None:
    engine = open_engine(url)
    start.wait()  # every process runs the jobs at the same moment, three rounds each
    results.put([run_periodic_jobs(engine, now=NOW + timedelta(hours=30 + i)) for i in range(3)])


def test_one_process_at_a_time_learns_and_nothing_is_learnt_twice(database_url: str) -> None:
    engine = open_engine(database_url, epsilon=0.5)
    configure(engine, [offer("loved", value=100.0), offer("ignored", value=100.0)])
    for i in range(300):
        at = NOW + timedelta(minutes=i)
        decision = engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=at)
        if decision.offers[0].offer_id == "loved":
            send_outcome(engine, f"e-{i}", decision.decision_id, "loved", "accept", at)
    rounds = run_in_processes(_periodic_worker, database_url, 4)
    learnt = [r.get("beta-bernoulli", 0) for worker in rounds for r in worker]
    assert sum(learnt) == 300  # every closed decision learnt exactly once, by some process
    with engine.db.connect() as connection:
        versions = [
            row.version
            for row in connection.execute(
                select(policy_snapshots).where(policy_snapshots.c.policy_name == "beta-bernoulli")
            )
        ]
    assert sorted(versions) == list(range(1, len(versions) + 1))
