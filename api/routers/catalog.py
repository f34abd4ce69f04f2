"""What marketers configure: offers, campaigns, budgets, the contact policy and placements.

Every change bumps the catalogue version in its own transaction; workers pick it up within
``refresh_seconds`` and this worker at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Response, status
from sqlalchemy import Connection

from api.deps import EngineDep, Marketer, Reader
from api.schemas import (
    BudgetIn,
    BudgetOut,
    CampaignIn,
    CampaignOut,
    ContactPolicyIn,
    Id,
    OfferIn,
    OfferOut,
    PlacementIn,
    PlacementOut,
)
from decisioning import catalog
from decisioning.budgets import business_day, dual_price
from decisioning.catalog import (
    budget_from_document,
    contact_policy_from_document,
    contact_policy_to_document,
    offer_from_document,
    offer_to_document,
)
from decisioning.engine import DecisionEngine
from decisioning.errors import NotFound
from decisioning.sql import repositories as repo
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import budgets, from_units

router = APIRouter(tags=["catalogue"])
T = TypeVar("T")


def _change(engine: DecisionEngine, work: Callable[[Connection, datetime], T]) -> T:
    with unit_of_work(engine.db) as connection:
        result = work(connection, datetime.now(UTC))
    engine.catalog.invalidate()
    return result


def _created(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


# --- offers --------------------------------------------------------------------------------------


@router.get("/offers", response_model=list[OfferOut])
def list_offers(engine: EngineDep, _role: Reader) -> list[dict[str, Any]]:
    with engine.db.connect() as connection:
        return [offer_to_document(o) for o in catalog.list_offers(connection)]


@router.get("/offers/{offer_id}", response_model=OfferOut)
def get_offer(offer_id: str, engine: EngineDep, _role: Reader) -> dict[str, Any]:
    with engine.db.connect() as connection:
        return offer_to_document(catalog.get_offer(connection, offer_id))


@router.put("/offers/{offer_id}", response_model=OfferOut)
def put_offer(
    offer_id: Id, body: OfferIn, response: Response, engine: EngineDep, _role: Marketer
) -> dict[str, Any]:
    """Create or replace an offer (201 if new); rules are checked before anything is stored."""
    offer = offer_from_document({"offer_id": offer_id, **body.model_dump()})
    _created(response, _change(engine, lambda c, now: catalog.put_offer(c, offer, now)))
    return offer_to_document(offer)


@router.delete("/offers/{offer_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_offer(offer_id: str, engine: EngineDep, _role: Marketer) -> None:
    _change(engine, lambda c, _now: catalog.delete_offer(c, offer_id))


# --- campaigns -----------------------------------------------------------------------------------


@router.get("/campaigns", response_model=list[CampaignOut])
def list_campaigns(engine: EngineDep, _role: Reader) -> list[CampaignOut]:
    with engine.db.connect() as connection:
        found = repo.list_campaigns(connection)
    return [CampaignOut(campaign_id=k, name=v) for k, v in sorted(found.items())]


@router.put("/campaigns/{campaign_id}", response_model=CampaignOut)
def put_campaign(
    campaign_id: Id, body: CampaignIn, response: Response, engine: EngineDep, _role: Marketer
) -> CampaignOut:
    _created(
        response,
        _change(engine, lambda c, now: catalog.put_campaign(c, campaign_id, body.name, now)),
    )
    return CampaignOut(campaign_id=campaign_id, name=body.name)


# --- budgets -------------------------------------------------------------------------------------


def _budget_out(document: dict[str, Any], state: repo.BudgetState, today: str) -> BudgetOut:
    spent = from_units(state.spent_units)
    pacing = document.get("pacing")
    return BudgetOut(
        **document,
        spent=spent,
        remaining=from_units(state.amount_units - state.spent_units),
        spent_today=from_units(state.day_spent_units) if state.day == today else 0.0,
        price=dual_price(budget_from_document(document), state) if pacing == "dual" else None,
    )


def _today(engine: DecisionEngine) -> str:
    return business_day(datetime.now(UTC), engine.settings.business_timezone)


@router.get("/budgets", response_model=list[BudgetOut])
def list_budgets(engine: EngineDep, _role: Reader) -> list[BudgetOut]:
    with engine.db.connect() as connection:
        documents = repo.load_documents(connection, budgets, "budget_id")
        states = repo.budget_states(connection)
    today = _today(engine)
    return [_budget_out(documents[b], states[b], today) for b in documents]


@router.get("/budgets/{budget_id}", response_model=BudgetOut)
def get_budget(budget_id: str, engine: EngineDep, _role: Reader) -> BudgetOut:
    with engine.db.connect() as connection:
        document = repo.load_document(connection, budgets, "budget_id", budget_id)
        states = repo.budget_states(connection, budget_id)
    if document is None:
        raise NotFound(f"no budget {budget_id!r}", field="budget_id")
    return _budget_out(document, states[budget_id], _today(engine))


@router.put("/budgets/{budget_id}", response_model=BudgetOut)
def put_budget(
    budget_id: Id, body: BudgetIn, response: Response, engine: EngineDep, _role: Marketer
) -> BudgetOut:
    """Create or replace a budget's settings; what it has spent so far is kept."""
    budget = budget_from_document({"budget_id": budget_id, **body.model_dump()})
    _created(response, _change(engine, lambda c, now: catalog.put_budget(c, budget, now)))
    return get_budget(budget_id, engine, _role)


# --- contact policy ------------------------------------------------------------------------------


@router.get("/contact-policy", response_model=ContactPolicyIn)
def get_contact_policy(engine: EngineDep, _role: Reader) -> dict[str, Any]:
    return contact_policy_to_document(engine.catalog.current().contact_policy)


@router.put("/contact-policy", response_model=ContactPolicyIn)
def put_contact_policy(body: ContactPolicyIn, engine: EngineDep, _role: Marketer) -> dict[str, Any]:
    policy = contact_policy_from_document(body.model_dump())
    _change(engine, lambda c, now: catalog.put_contact_policy(c, policy, now))
    return contact_policy_to_document(policy)


# --- placements ----------------------------------------------------------------------------------


@router.get("/placements/{placement}", response_model=PlacementOut)
def get_placement(placement: str, engine: EngineDep, _role: Reader) -> PlacementOut:
    """The placement's default policy: its own, or the engine's default when none was set."""
    policy = engine.catalog.current().placement_policies.get(
        placement, engine.settings.default_policy
    )
    return PlacementOut(placement=placement, policy=policy)


@router.put("/placements/{placement}", response_model=PlacementOut)
def put_placement(
    placement: Id, body: PlacementIn, engine: EngineDep, _role: Marketer
) -> PlacementOut:
    """Set the placement's default policy (a promoting experiment sets it too)."""
    _change(engine, lambda c, now: catalog.put_placement_policy(c, placement, body.policy, now))
    return PlacementOut(placement=placement, policy=body.policy)
