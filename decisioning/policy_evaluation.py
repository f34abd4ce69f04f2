"""What a registered policy would have earned on the engine's own decision log (off-policy).

``decisioning evaluate --policy NAME [--since ...]`` reads the closed decisions (their attribution
window has passed, so each reward is final), turns each decision's first-ranked offer into a
logged round (the eligible candidates as actions, the reward under the placement's definition,
the propensity the offer was drawn with) and runs ``bandits.evaluation.evaluate_policy`` on
them. Only rank 1 is used: lower ranks were drawn conditionally on the offers above them, so their
propensities are not the probabilities of a one-offer policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from bandits import Policy, make_policy
from bandits.evaluation import Estimate, LoggedRound, evaluate_policy
from decisioning.engine import DecisionEngine, log_position
from decisioning.learning import RewardDefinition, closed_batches, shown_rounds
from decisioning.sql import repositories as repo

SnapshotChoice = Literal["latest", "fresh"]


@dataclass(frozen=True, slots=True)
class LogEvaluation:
    """Estimates of the target policy's value per decision, next to what the log earned."""

    policy_name: str
    policy_version: int
    rounds: int
    logged_value: float
    estimates: dict[str, Estimate]


def load_logged_rounds(
    engine: DecisionEngine,
    reward: RewardDefinition,
    since: datetime | None,
    until: datetime,
    batch_size: int = 10_000,
) -> list[LoggedRound]:
    """The rank-1 round of every decision logged in ``[since, until - window]``."""
    catalog = engine.catalog.current()
    rounds: list[LoggedRound] = []
    after = log_position(since) if since else ""  # every id of since's millisecond is after it
    for rows, outcomes in closed_batches(engine, after, until - reward.window, batch_size):
        for row in rows:
            shown = shown_rounds(row, catalog, reward, outcomes)
            if shown:
                rounds.append(shown[0])
    return rounds


def target_policy(
    engine: DecisionEngine, name: str, snapshot: SnapshotChoice, params: dict[str, object]
) -> tuple[Policy, int]:
    """The newest published snapshot of ``name`` (version >= 1), or a new one (version 0)."""
    if snapshot == "latest" and not params:
        with engine.db.connect() as connection:
            stored = repo.latest_snapshot(connection, name)
        if stored is not None:
            return Policy.from_bytes(stored.state), stored.version
    return make_policy(name, seed=engine.settings.seed, **params), 0


def evaluate_log(
    engine: DecisionEngine,
    policy_name: str,
    reward: RewardDefinition,
    *,
    since: datetime | None,
    until: datetime,
    snapshot: SnapshotChoice = "latest",
    params: dict[str, object] | None = None,
    alpha: float = 0.05,
) -> LogEvaluation:
    policy, version = target_policy(engine, policy_name, snapshot, params or {})
    rounds = load_logged_rounds(engine, reward, since, until)
    logged = float(np.mean([r.reward for r in rounds])) if rounds else float("nan")
    return LogEvaluation(
        policy_name,
        version,
        len(rounds),
        logged,
        evaluate_policy(policy, rounds, seed=engine.settings.seed or 0, alpha=alpha),
    )


def format_evaluation(result: LogEvaluation, alpha: float = 0.05) -> str:
    level = f"{1 - alpha:.0%} CI"
    version = f"snapshot v{result.policy_version}" if result.policy_version else "untrained"
    lines = [
        f"policy {result.policy_name} ({version}) on {result.rounds} logged decisions; "
        f"the logging policy earned {result.logged_value:.4f} per decision",
        f"{'estimator':<10} {'value':>10} {level:>23} {'ESS':>10} {'note':<}",
    ]
    for name, estimate in result.estimates.items():
        lines.append(
            f"{name:<10} {estimate.value:>10.4f} "
            f"{f'[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}]':>23} "
            f"{estimate.ess:>10.1f} {estimate.error or ''}"
        )
    return "\n".join(lines)
