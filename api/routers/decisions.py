"""POST /v1/decisions: the next best offers for one customer, here, now."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from api.deps import EngineDep, Reader, allowed_roles, authorize, bearer_key, json_body
from api.groups import DecisionGroups
from api.schemas import DecisionIn, DecisionOut
from decisioning.domain import Decision, DecisionRequest
from decisioning.errors import NotFound
from decisioning.sql import repositories as repo

router = APIRouter(tags=["decisions"])


DECIDERS = allowed_roles("channel")


async def decide(request: Request) -> Response:
    """Choose up to ``limit`` offers; an empty ``offers`` list is a valid answer.
    \f
    The service's hot path, so the app serves it ahead of its middleware stack
    (``api.app.DirectRoutes``), and it reads its key and body itself (``authorize``,
    ``json_body``) and serialises its answer, where FastAPI's request handler would solve
    dependencies, body and response model anew on every request (measured: about 20 % more
    decisions a second over HTTP without it). The key is checked before the body; errors read
    as on every other route; ``openapi_extra`` declares the body and the key.

    The decision itself runs on the event loop, grouped with the others that arrived together
    into one transaction (``api.groups.DecisionGroups``).
    """
    authorize(request, bearer_key(request), DECIDERS)
    body = await json_body(request, DecisionIn)
    groups: DecisionGroups = request.app.state.decision_groups
    decision = await groups.decide(
        DecisionRequest(
            customer_id=body.customer_id,
            channel=body.channel,
            placement=body.placement,
            context=body.context,
            limit=body.limit,
        )
    )
    return Response(_answer(decision, body.explain), media_type="application/json")


def _answer(decision: Decision, explain: bool) -> bytes:
    """The ``DecisionOut`` document, written by orjson (which writes the offers, dataclasses,
    as they are) instead of built as a pydantic model and serialised."""
    return orjson.dumps(
        {
            "decision_id": decision.decision_id,
            "created_at": decision.created_at,
            "customer_id": decision.customer_id,
            "channel": decision.channel,
            "placement": decision.placement,
            "offers": decision.offers,
            "policy": decision.policy_name,
            "policy_version": decision.policy_version,
            "experiment_id": decision.experiment_id,
            "cell": decision.cell,
            "latency_ms": decision.latency_ms,
            "candidates": [c._asdict() for c in decision.candidates] if explain else None,
        },
        option=orjson.OPT_UTC_Z,
    )


router.add_api_route(
    "/decisions",
    decide,
    methods=["POST"],
    response_model=DecisionOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DecisionIn.model_json_schema()}},
        },
        "security": [{"HTTPBearer": []}],
    },
)


@router.get("/decisions/{decision_id}")
def get_decision(decision_id: str, engine: EngineDep, _role: Reader) -> dict[str, object]:
    """The logged decision: context, every candidate with its reason or score, the chosen offers."""
    with engine.db.connect() as connection:
        row = repo.get_decision(connection, decision_id)
    if row is None:
        raise NotFound(f"no decision {decision_id!r}", field="decision_id")
    return dict(row._mapping)
