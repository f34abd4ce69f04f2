"""Feedback actions: what decisive results change in the configuration, with an audit trail.

*Promote.* An experiment whose design says ``promote = "auto"`` or ``"approval"`` is reviewed
periodically (by ``decisioning learn`` and by the embedded service's background thread). Once its
anytime-valid primary comparison is decisive -- a cell beats the control at the design's alpha
after Holm, or the control beats every cell -- the winning cell's policy becomes the default of
the experiment's placement and the experiment concludes, so every unit moves to the winner at
the next catalogue refresh.

*Retire.* With the bank-wide holdout's ``retire`` on, every offer's own measure (``offer:<id>``:
the customers shown it against the held-out customers it would have been shown to) is reviewed
too. An offer is retired once the anytime-valid upper bound of its incremental value per
customer shown is below what those customers' contacts cost (the offer's cost times their mean
contacts): its uplift is then significantly too small to pay for itself -- zero and negative
uplifts included.

*Reallocate.* A running experiment with ``allocation = "bandit"`` gets new cell weights at the
end of each period (``bandit_period_hours``), once every cell has ``bandit_min_units`` units:
each cell's posterior probability of being best, the units of each period weighted alike.
Units keep the cell they first got; new units follow the new weights. Weights follow the
evidence by design, so reallocations apply at once; each is in the audit trail.

*Re-value.* With its ``revalue`` on, an offer's measured incrementality -- the share of the
conversions among customers shown it that the held-out customers did not have, ``(p_shown -
p_holdout) / p_shown`` of its product -- replaces the neutral 1 that arbitration multiplies the
policy's P(accept) by, so offers whose conversions would have happened anyway lose priority.

The anytime-valid intervals stay valid under this continuous monitoring, which is what makes
acting on the first decisive look safe. Every action is a row of ``feedback_actions`` holding the
change and the statistics that triggered it: ``applied`` at once under ``auto``; ``pending``
under ``approval``, changing nothing until a marketer approves it (then ``applied``) or rejects
it (``rejected``). A measure has at most one pending action; a rejected proposal is proposed
again at a later review if the evidence still holds, so a marketer sees it again rather than
never.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from decisioning.catalog import (
    experiment_from_document,
    get_experiment,
    get_offer,
    get_placement_policy,
    holdout_from_document,
    list_experiment_documents,
    list_offers,
    put_experiment,
    put_offer,
    put_placement_policy,
)
from decisioning.domain import Offer
from decisioning.engine import OFFER_PREFIX, PERIOD_SEPARATOR
from decisioning.errors import Conflict, NotFound
from decisioning.reports import experiment_report
from decisioning.sql import repositories as repo
from decisioning.sql.tables import allocations, feedback_actions, holdouts
from experiments.bandit_allocation import stratified_means, thompson_weights
from experiments.design import Experiment, FeedbackMode
from experiments.statistics import SampleStats

PROMOTE: Final = "promote"
RETIRE: Final = "retire"
REVALUE: Final = "revalue"
REALLOCATE: Final = "reallocate"
MIN_UNITS_TO_REVALUE: Final = 100
"""Units each cell of an offer's measure needs before its incrementality is trusted."""
REVALUE_STEP: Final = 0.05
"""Smallest change of an offer's incrementality worth an action (and an audit entry)."""
PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"
AUTOMATIC: Final = "automatic"
"""``decided_by`` of actions applied without approval."""


def review(connection: Connection, now: datetime, default_policy: str) -> list[dict[str, Any]]:
    """Propose, or apply, the promotions and retirements that the results call for.

    ``default_policy`` is the engine's default, the placement's policy when none was set.
    Returns the actions written by this review.
    """
    proposals: list[tuple[FeedbackMode, dict[str, Any]]] = []
    for document in list_experiment_documents(connection):
        experiment = experiment_from_document(document)
        if experiment.status != "running":
            continue
        if experiment.allocation == "bandit":
            reallocation = _reallocation(connection, experiment, now)
            if reallocation is not None:  # the traffic follows the evidence without approval
                proposals.append(("auto", reallocation))
        if experiment.promote == "off" or _pending(connection, experiment.experiment_id):
            continue
        report = experiment_report(connection, experiment.experiment_id)
        winner = report["recommendation"]["winner"]
        if winner is not None:
            promotion = _promotion(connection, experiment, report, winner, default_policy, now)
            proposals.append((experiment.promote, promotion))
    bank = repo.load_document(connection, holdouts, "holdout_id", "bank")
    holdout = holdout_from_document(bank) if bank is not None else None
    if holdout is not None and (holdout.retire != "off" or holdout.revalue != "off"):
        for offer in list_offers(connection):
            measure = OFFER_PREFIX + offer.offer_id
            if offer.retired or _pending(connection, measure):
                continue
            report = experiment_report(connection, measure)
            retirement = _retirement(offer, report, now) if holdout.retire != "off" else None
            if retirement is not None:
                proposals.append((holdout.retire, retirement))
            elif holdout.revalue != "off":
                revaluation = _revaluation(offer, report, now)
                if revaluation is not None:
                    proposals.append((holdout.revalue, revaluation))
    written = []
    for mode, action in proposals:
        if mode == "auto":
            _apply(connection, action, now)
            action = {**action, "status": APPLIED, "decided_at": now, "decided_by": AUTOMATIC}
        connection.execute(insert(feedback_actions).values(**action))
        written.append(action)
    return written


def _retirement(offer: Offer, report: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """A retire action if the offer's incremental value is significantly below break-even."""
    [value] = report["metrics"]["value"]["comparisons"]
    shown = report["metrics"]["contacts"]["cells"].get("shown")
    if value["sequential_ci"] is None or shown is None or shown["mean"] is None:
        return None
    break_even = offer.cost * shown["mean"]
    if value["sequential_ci"][1] >= break_even:
        return None
    return _action(
        report["experiment_id"],
        RETIRE,
        {
            "offer_id": offer.offer_id,
            "incremental_value": value["lift"],
            "sequential_ci": value["sequential_ci"],
            "break_even": break_even,
            "units": {c["name"]: c["units"] for c in report["cells"]},
            "comparisons": report["metrics"]["value"]["comparisons"],
            "reason": (
                f"the incremental value per customer shown is at most "
                f"{value['sequential_ci'][1]:.4g} (anytime-valid), below the "
                f"{break_even:.4g} their contacts cost"
            ),
        },
        now,
    )


def _revaluation(offer: Offer, report: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """A re-value action once both cells hold ``MIN_UNITS_TO_REVALUE`` units and the measured
    incrementality, ``(p_shown - p_holdout) / p_shown`` of the offer's product, moved by
    ``REVALUE_STEP`` or more from the one arbitration uses."""
    cells = report["metrics"]["conversion"]["cells"]
    shown, held = cells.get("shown"), cells.get("holdout")
    if shown is None or held is None or min(shown["n"], held["n"]) < MIN_UNITS_TO_REVALUE:
        return None
    if not shown["mean"]:
        return None
    measured = min(1.0, max(-1.0, (shown["mean"] - held["mean"]) / shown["mean"]))
    if abs(measured - offer.incrementality) < REVALUE_STEP:
        return None
    return _action(
        report["experiment_id"],
        REVALUE,
        {
            "offer_id": offer.offer_id,
            "from_incrementality": offer.incrementality,
            "to_incrementality": measured,
            "conversion_shown": shown["mean"],
            "conversion_holdout": held["mean"],
            "units": {c["name"]: c["units"] for c in report["cells"]},
            "comparisons": report["metrics"]["conversion"]["comparisons"],
            "reason": (
                f"{measured:.0%} of the conversions among customers shown the offer are "
                f"incremental ({shown['mean']:.4g} shown vs {held['mean']:.4g} held out)"
            ),
        },
        now,
    )


def _reallocation(
    connection: Connection, experiment: Experiment, now: datetime
) -> dict[str, Any] | None:
    """The next period's weights of a bandit experiment, once its period is over and every cell
    has ``bandit_min_units`` units: each cell's posterior probability of being best on the
    primary metric, stratified by period (``experiments.bandit_allocation``)."""
    experiment_id = experiment.experiment_id
    stored = repo.load_document(connection, allocations, "experiment_id", experiment_id)
    if stored is None:  # the design's weights hold from the first review on
        weights = {cell.name: cell.weight for cell in experiment.cells}
        document = {"period": 0, "weights": weights, "since": now.isoformat()}
        repo.upsert_document(connection, allocations, "experiment_id", experiment_id, document, now)
        return None
    period = int(stored["period"])
    since = datetime.fromisoformat(stored["since"])
    if now - since < timedelta(hours=experiment.bandit_period_hours):
        return None
    metric = experiment.primary_metric
    periods: list[dict[str, SampleStats]] = []
    for k in range(period + 1):
        rows = repo.cell_statistics(connection, f"{experiment_id}{PERIOD_SEPARATOR}{k}")
        periods.append(
            {r.cell: SampleStats(r.n, r.sum, r.sum_squares) for r in rows if r.metric == metric}
        )
    names = [cell.name for cell in experiment.cells]
    units = {n: sum(p[n].n for p in periods if n in p) for n in names}
    if min(units.values()) < experiment.bandit_min_units:
        return None  # still exploring with the design's weights
    try:
        posteriors = stratified_means(periods)
    except ValueError:  # no period in which every cell has two units yet
        return None
    seed = int.from_bytes(
        hashlib.blake2b(f"{experiment.salt}:{period + 1}".encode(), digest_size=8).digest()
    )
    return _action(
        experiment_id,
        REALLOCATE,
        {
            "period": period + 1,
            "from_weights": stored["weights"],
            "to_weights": thompson_weights(posteriors, seed=seed),
            "metric": metric,
            "posteriors": {n: {"mean": m, "stderr": se} for n, (m, se) in posteriors.items()},
            "units": units,
            "reason": "each cell's posterior probability of the highest mean",
        },
        now,
    )


def _action(measure: str, kind: str, details: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "action_id": uuid.uuid4().hex,
        "experiment_id": measure,
        "kind": kind,
        "status": PENDING,
        "details": details,
        "created_at": now,
        "decided_at": None,
        "decided_by": None,
    }


def _promotion(
    connection: Connection,
    experiment: Experiment,
    report: dict[str, Any],
    winner: str,
    default_policy: str,
    now: datetime,
) -> dict[str, Any]:
    assert experiment.placement is not None  # the design requires one for promote
    current = get_placement_policy(connection, experiment.placement) or default_policy
    cell = next(c for c in experiment.cells if c.name == winner)
    metric = experiment.primary_metric
    return _action(
        experiment.experiment_id,
        PROMOTE,
        {
            "placement": experiment.placement,
            "from_policy": current,
            # A winning business-as-usual cell keeps the placement's policy.
            "to_policy": cell.policy or current,
            "winning_cell": winner,
            "metric": metric,
            "alpha": report["alpha"],
            "units": {c["name"]: c["units"] for c in report["cells"]},
            "comparisons": report["metrics"][metric]["comparisons"],
            "reason": report["recommendation"]["reason"],
        },
        now,
    )


def _apply(connection: Connection, action: dict[str, Any], now: datetime) -> None:
    details = action["details"]
    if action["kind"] == REALLOCATE:
        document = {
            "period": details["period"],
            "weights": details["to_weights"],
            "since": now.isoformat(),
        }
        repo.upsert_document(
            connection, allocations, "experiment_id", action["experiment_id"], document, now
        )
        repo.bump_config_version(connection)
        return
    if action["kind"] in (RETIRE, REVALUE):
        offer = get_offer(connection, details["offer_id"])
        if action["kind"] == RETIRE:
            put_offer(connection, replace(offer, retired=True), now)
        else:
            put_offer(connection, replace(offer, incrementality=details["to_incrementality"]), now)
        return
    put_placement_policy(connection, details["placement"], details["to_policy"], now)
    experiment = get_experiment(connection, action["experiment_id"])
    if experiment.status != "concluded":
        put_experiment(connection, replace(experiment, status="concluded"), now)


def _pending(connection: Connection, experiment_id: str) -> bool:
    return (
        connection.execute(
            select(feedback_actions.c.action_id).where(
                feedback_actions.c.experiment_id == experiment_id,
                feedback_actions.c.status == PENDING,
            )
        ).first()
        is not None
    )


def decide_action(
    connection: Connection,
    experiment_id: str,
    action_id: str,
    *,
    approve: bool,
    decided_by: str,
    now: datetime,
) -> dict[str, Any]:
    """Approve (apply) or reject a pending action; anything else is a conflict."""
    row = connection.execute(
        select(feedback_actions)
        .where(
            feedback_actions.c.action_id == action_id,
            feedback_actions.c.experiment_id == experiment_id,
        )
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(
            f"no action {action_id!r} on experiment {experiment_id!r}", field="action_id"
        )
    action = dict(row._mapping)
    if action["status"] != PENDING:
        raise Conflict(f"the action is already {action['status']}", field="action_id")
    status = APPLIED if approve else REJECTED
    if approve:
        _apply(connection, action, now)
    connection.execute(
        update(feedback_actions)
        .where(feedback_actions.c.action_id == action_id)
        .values(status=status, decided_at=now, decided_by=decided_by)
    )
    return {**action, "status": status, "decided_at": now, "decided_by": decided_by}
