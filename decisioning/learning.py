"""The learner: replays closed decisions with their rewards into a policy and publishes snapshots.

A decision is *closed* once its attribution window has passed; its reward is then final (the
outcome events within the window, or the default reward when there were none), so every round is
learnt exactly once, in log order. Each run publishes the policy as a new numbered snapshot with
the cursor it reached; workers pick the newest snapshot up within ``refresh_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bandits import Policy, make_policy
from bandits.evaluation import LoggedRound
from decisioning.budgets import update_prices
from decisioning.catalog import CatalogSnapshot
from decisioning.engine import EPOCH, DecisionEngine, log_position
from decisioning.errors import InvalidInput
from decisioning.feedback import review
from decisioning.sql import repositories as repo
from decisioning.sql.session import exclusive, unit_of_work
from decisioning.sql.tables import from_units

LOG = logging.getLogger(__name__)
RewardKind = Literal["click", "accept", "convert", "value_minus_cost"]
REWARD_KINDS: tuple[str, ...] = ("click", "accept", "convert", "value_minus_cost")
# Which event types earn reward 1 for each binary definition.
SUCCESS_EVENTS: dict[str, frozenset[str]] = {
    "click": frozenset({"click", "accept", "convert"}),
    "accept": frozenset({"accept", "convert"}),
    "convert": frozenset({"convert"}),
}


@dataclass(frozen=True, slots=True)
class RewardDefinition:
    """How a placement turns outcomes into a reward, and how long outcomes are credited.

    ``value_minus_cost`` sums conversion values and subtracts the offer's contact cost; the
    binary kinds give 1 when a success event arrived within ``window`` and ``default`` otherwise.
    """

    kind: RewardKind = "accept"
    window: timedelta = timedelta(hours=24)
    default: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise InvalidInput(f"must be one of {', '.join(REWARD_KINDS)}", field="reward.kind")
        if self.window <= timedelta(0):
            raise InvalidInput("must be positive", field="reward.window")

    def reward(
        self, outcomes: Sequence[tuple[str, float, datetime]], decided_at: datetime, cost: float
    ) -> float:
        """The reward of one shown offer from its ``(type, value, occurred_at)`` outcomes."""
        deadline = decided_at + self.window
        credited = [(t, v) for t, v, at in outcomes if at <= deadline]
        if self.kind == "value_minus_cost":
            return sum(v for t, v in credited if t == "convert") - cost
        successes = SUCCESS_EVENTS[self.kind]
        return 1.0 if any(t in successes for t, _ in credited) else self.default


class Learner:
    """Learns one policy from the decision log; run it as ``decisioning learn`` or in-process."""

    def __init__(
        self,
        engine: DecisionEngine,
        policy_name: str,
        rewards: Mapping[str, RewardDefinition] | None = None,
        default_reward: RewardDefinition | None = None,
        batch_size: int = 10_000,
    ) -> None:
        self.engine = engine
        self.policy_name = policy_name
        self.rewards = dict(rewards or {})
        self.default_reward = default_reward or RewardDefinition(
            window=timedelta(hours=engine.settings.attribution_window_hours)
        )
        self.batch_size = batch_size

    def reward_for(self, placement: str) -> RewardDefinition:
        return self.rewards.get(placement, self.default_reward)

    def run_once(self, now: datetime | None = None) -> int:
        """Learn every decision closed by ``now`` not learnt yet; returns rounds learnt."""
        now = now or datetime.now(UTC)
        catalog = self.engine.catalog.current()
        longest = max([r.window for r in self.rewards.values()] + [self.default_reward.window])
        with self.engine.db.connect() as connection:
            snapshot = repo.latest_snapshot(connection, self.policy_name)
        if snapshot is None:
            policy = make_policy(self.policy_name, seed=self.engine.settings.seed)
            version, rounds, cursor = 0, 0, ""
        else:
            policy = Policy.from_bytes(snapshot.state)
            version, rounds = snapshot.version, snapshot.rounds
            cursor = snapshot.learned_decision_id
        learnt = 0
        learned_until = snapshot.learned_until if snapshot is not None else EPOCH
        for rows, outcomes in closed_batches(self.engine, cursor, now - longest, self.batch_size):
            for row in rows:
                definition = self.reward_for(row.placement)
                for shown in shown_rounds(row, catalog, definition, outcomes):
                    policy.learn_one(
                        shown.context, shown.actions, shown.chosen, shown.reward, shown.propensity
                    )
                learnt += len(row.offers)
            cursor, learned_until = rows[-1].decision_id, rows[-1].created_at
        if learnt == 0 and snapshot is not None:
            return 0
        with unit_of_work(self.engine.db) as connection:
            repo.insert_snapshot(
                connection,
                {
                    "policy_name": self.policy_name,
                    "version": version + 1,
                    "state": policy.to_bytes(),
                    "learned_until": learned_until,
                    "learned_decision_id": cursor,
                    "rounds": rounds + learnt,
                    "created_at": now,
                },
            )
        return learnt


Outcomes = Mapping[tuple[str, str], list[tuple[str, float, datetime]]]
"""``(type, value, occurred_at)`` of the events of each ``(decision_id, offer_id)``."""


def closed_batches(
    engine: DecisionEngine, after: str, until: datetime, batch_size: int
) -> Iterator[tuple[list[Any], Outcomes]]:
    """The decisions logged after the decision id ``after`` (a cursor; ``""`` is the start)
    and before ``until``'s millisecond, in log order, a batch of rows at a time with the
    outcome events of those rows.

    A decision made within ``until``'s millisecond waits for the next call: the ids of one
    millisecond are in random order, so the cursor must not stop inside one.
    """
    before = log_position(until)
    while True:
        with engine.db.connect() as connection:
            rows = repo.decisions_between(connection, after, before, batch_size)
            outcomes: dict[tuple[str, str], list[tuple[str, float, datetime]]] = {}
            if rows:
                for decision_id, offer_id, kind, value_units, at in repo.events_for(
                    connection, [row.decision_id for row in rows]
                ):
                    outcomes.setdefault((decision_id, offer_id), []).append(
                        (kind, from_units(value_units), at)
                    )
        if not rows:
            return
        yield rows, outcomes
        if len(rows) < batch_size:
            return
        after = rows[-1].decision_id


def shown_rounds(
    row: Any, catalog: CatalogSnapshot, definition: RewardDefinition, outcomes: Outcomes
) -> list[LoggedRound]:
    """One logged round per offer a decision showed, rank by rank: the eligible candidates as
    actions, the reward under ``definition`` and the propensity the offer was drawn with."""
    eligible = [o for o, logged in row.candidates.items() if not isinstance(logged, str)]
    actions = {o: catalog.action_features.get(o, {"offer_id": o}) for o in eligible}
    rounds = []
    for shown in sorted(row.offers, key=lambda s: s["rank"]):
        offer_id = shown["offer_id"]
        offer = catalog.offers.get(offer_id)
        reward = definition.reward(
            outcomes.get((row.decision_id, offer_id), []),
            row.created_at,
            offer.cost if offer else 0.0,
        )
        rounds.append(LoggedRound(row.context, actions, offer_id, reward, shown["propensity"]))
    return rounds


def policies_in_use(catalog: CatalogSnapshot, default_policy: str) -> list[str]:
    """Every policy a decision may use now: the default, placements' and running cells' own."""
    names = {default_policy, *catalog.placement_policies.values()}
    names.update(
        cell.policy
        for experiment in catalog.experiments.values()
        if experiment.status == "running"
        for cell in experiment.cells
        if cell.policy is not None
    )
    return sorted(names)


def run_periodic_jobs(
    engine: DecisionEngine,
    default_reward: RewardDefinition | None = None,
    rewards: Mapping[str, RewardDefinition] | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """One round of the background work: learn every policy in use (rounds learnt per policy),
    act on decisive results (``decisioning.feedback``), step the dual-paced budgets' prices.
    One process at a time does it; the others return ``{}`` at once."""
    now = now or datetime.now(UTC)
    with exclusive(engine.db, "periodic-jobs") as mine:
        if not mine:  # another process is learning and reviewing right now
            return {}
        return _learn_and_review(engine, default_reward, rewards, now)


def _learn_and_review(
    engine: DecisionEngine,
    default_reward: RewardDefinition | None,
    rewards: Mapping[str, RewardDefinition] | None,
    now: datetime,
) -> dict[str, int]:
    catalog = engine.catalog.current()
    learnt = {
        name: Learner(engine, name, rewards, default_reward).run_once(now)
        for name in policies_in_use(catalog, engine.settings.default_policy)
    }
    with unit_of_work(engine.db) as connection:
        if review(connection, now, engine.settings.default_policy):
            engine.catalog.invalidate()
    step_prices(engine, now)
    return learnt


def step_prices(engine: DecisionEngine, now: datetime) -> int:
    """Step the price of every dual-paced budget due a step (``budgets.update_prices``); returns
    how many moved. The engine's cached budget states are dropped once the prices are committed
    (before, a decision could cache the old price again)."""
    with unit_of_work(engine.db) as connection:
        moved = update_prices(connection, engine.catalog.current().budgets.values(), now)
    if moved:
        engine.budget_states.clear()
    return moved


class BackgroundLearner:
    """Runs ``run_periodic_jobs`` every ``interval_seconds`` in a daemon thread (the embedded
    default; ``decisioning learn`` runs the same jobs as a separate process)."""

    def __init__(self, engine: DecisionEngine, interval_seconds: float) -> None:
        self.engine = engine
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                run_periodic_jobs(self.engine)
            except Exception:  # the next round retries; the service must keep learning
                LOG.exception("periodic jobs failed")
