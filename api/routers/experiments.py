"""Experiments and holdouts: design (marketer), sufficient statistics and reports (analyst)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response, status

from api.deps import EngineDep, KeyIdentity, Marketer, Reader
from api.schemas import (
    CellStatsOut,
    ExperimentIn,
    ExperimentOut,
    FeedbackActionOut,
    HoldoutIn,
    HoldoutOut,
    Id,
)
from decisioning import catalog, feedback, reports
from decisioning.catalog import experiment_from_document, experiment_to_document
from decisioning.engine import OFFER_PREFIX
from decisioning.sql import repositories as repo
from decisioning.sql.session import unit_of_work
from experiments.design import Holdout

router = APIRouter(tags=["experiments"])


@router.get("/experiments", response_model=list[ExperimentOut])
def list_experiments(engine: EngineDep, _role: Reader) -> list[dict[str, Any]]:
    return [experiment_to_document(e) for e in engine.catalog.current().experiments.values()]


@router.get("/experiments/{experiment_id}", response_model=ExperimentOut)
def get_experiment(experiment_id: str, engine: EngineDep, _role: Reader) -> dict[str, Any]:
    with engine.db.connect() as connection:
        return experiment_to_document(catalog.get_experiment(connection, experiment_id))


@router.put("/experiments/{experiment_id}", response_model=ExperimentOut)
def put_experiment(
    experiment_id: Id, body: ExperimentIn, response: Response, engine: EngineDep, _role: Marketer
) -> dict[str, Any]:
    """Create or change an experiment (201 if new). A running design is frozen except ramping
    ``traffic`` up and moving ``status`` to stopped or concluded."""
    experiment = experiment_from_document({"experiment_id": experiment_id, **body.model_dump()})
    with unit_of_work(engine.db) as connection:
        created = catalog.put_experiment(connection, experiment, datetime.now(UTC))
        stored = catalog.get_experiment(connection, experiment_id)
    engine.catalog.invalidate()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return experiment_to_document(stored)


@router.get("/experiments/{experiment_id}/statistics", response_model=list[CellStatsOut])
def experiment_statistics(experiment_id: str, engine: EngineDep, _role: Reader) -> list[Any]:
    """Per cell and metric: n, sum, sum of squares and the cross sums CUPED needs."""
    with engine.db.connect() as connection:
        return [dict(row._mapping) for row in repo.cell_statistics(connection, experiment_id)]


@router.get("/experiments/{experiment_id}/report")
def experiment_report(
    experiment_id: str, engine: EngineDep, _role: Reader, cuped: bool = True
) -> dict[str, Any]:
    """Lift per cell and metric with fixed-horizon and anytime-valid intervals, CUPED, the
    sample-ratio check and a recommendation. ``holdout:bank`` (or ``holdout:<placement>``)
    reports the campaign against the universal holdout."""
    with engine.db.connect() as connection:
        return reports.experiment_report(connection, experiment_id, cuped=cuped)


@router.get("/experiments/{experiment_id}/actions", response_model=list[FeedbackActionOut])
def experiment_actions(experiment_id: str, engine: EngineDep, _role: Reader) -> list[Any]:
    """The audit trail of an experiment, or of an offer's measure ``offer:<id>``: each action
    applied or proposed, with the statistics behind it."""
    with engine.db.connect() as connection:
        if experiment_id.startswith(OFFER_PREFIX):  # 404 for an unknown offer or experiment
            catalog.get_offer(connection, experiment_id.removeprefix(OFFER_PREFIX))
        else:
            catalog.get_experiment(connection, experiment_id)
        return repo.feedback_actions_of(connection, experiment_id)


@router.post(
    "/experiments/{experiment_id}/actions/{action_id}/{verdict}",
    response_model=FeedbackActionOut,
)
def decide_action(
    experiment_id: str,
    action_id: str,
    verdict: Literal["approve", "reject"],
    engine: EngineDep,
    _role: Marketer,
    who: KeyIdentity,
) -> dict[str, Any]:
    """Approve (apply now) or reject a pending action; 409 if it was decided already."""
    with unit_of_work(engine.db) as connection:
        decided = feedback.decide_action(
            connection,
            experiment_id,
            action_id,
            approve=verdict == "approve",
            decided_by=who,
            now=datetime.now(UTC),
        )
    engine.catalog.invalidate()
    return decided


@router.put("/holdouts/{holdout_id}", response_model=HoldoutOut)
def put_holdout(holdout_id: Id, body: HoldoutIn, engine: EngineDep, _role: Marketer) -> HoldoutOut:
    """``bank`` for the bank-wide holdout, or a placement's name for that placement alone."""
    holdout = Holdout(
        share=body.share,
        placement=None if holdout_id == "bank" else holdout_id,
        salt=body.salt,
        retire=body.retire,
        revalue=body.revalue,
    )
    with unit_of_work(engine.db) as connection:
        catalog.put_holdout(connection, holdout, datetime.now(UTC))
    engine.catalog.invalidate()
    return HoldoutOut(holdout_id=holdout_id, placement=holdout.placement, **body.model_dump())
