"""POST /v1/decisions: the next best offers for one customer, here, now."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.deps import EngineDep, Reader, allowed_roles, authorize, bearer_key, json_body
from api.schemas import CandidateOut, ChosenOfferOut, DecisionIn, DecisionOut
from decisioning.domain import DecisionRequest
from decisioning.engine import DecisionEngine
from decisioning.errors import NotFound
from decisioning.sql import repositories as repo

router = APIRouter(tags=["decisions"])


DECIDERS = allowed_roles("channel")


@router.post(
    "/decisions",
    response_model=DecisionOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DecisionIn.model_json_schema()}},
        },
        "security": [{"HTTPBearer": []}],
    },
)
async def decide(request: Request) -> Response:
    """Choose up to ``limit`` offers; an empty ``offers`` list is a valid answer.

    The service's hot path, so it reads its key and body itself (``authorize``, ``json_body``)
    instead of through FastAPI's dependencies and body parameter, which solve them anew on every
    request (measured: 11 % of a decision's time over HTTP). The key is checked before the
    body; errors read as on every other route; ``openapi_extra`` declares the body and the key.

    Deliberately ``async`` although ``engine.decide`` blocks: a decision takes well under a
    millisecond, and running it on the event loop avoids a thread hand-off per request and
    threads queueing on the database's write lock. Scale out with more worker processes.
    ``decision_turns`` (``api.turns.ArrivalOrder``) serves them first come, first served.
    """
    authorize(request, bearer_key(request), DECIDERS)
    body = await json_body(request, DecisionIn)
    engine: DecisionEngine = request.app.state.engine
    async with request.app.state.decision_turns:
        decision = engine.decide(
            DecisionRequest(
                customer_id=body.customer_id,
                channel=body.channel,
                placement=body.placement,
                context=body.context,
                limit=body.limit,
            )
        )
    answer = DecisionOut(
        decision_id=decision.decision_id,
        created_at=decision.created_at,
        customer_id=decision.customer_id,
        channel=decision.channel,
        placement=decision.placement,
        offers=[ChosenOfferOut.model_validate(o, from_attributes=True) for o in decision.offers],
        policy=decision.policy_name,
        policy_version=decision.policy_version,
        experiment_id=decision.experiment_id,
        cell=decision.cell,
        latency_ms=decision.latency_ms,
        candidates=(
            [CandidateOut.model_validate(c, from_attributes=True) for c in decision.candidates]
            if body.explain
            else None
        ),
    )
    # Serialised here once: FastAPI would validate the model again before encoding it.
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/decisions/{decision_id}")
def get_decision(decision_id: str, engine: EngineDep, _role: Reader) -> dict[str, object]:
    """The logged decision: context, every candidate with its reason or score, the chosen offers."""
    with engine.db.connect() as connection:
        row = repo.get_decision(connection, decision_id)
    if row is None:
        raise NotFound(f"no decision {decision_id!r}", field="decision_id")
    return dict(row._mapping)
