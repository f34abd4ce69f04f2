"""Customer profiles: attributes merged under each decision's context."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.deps import EngineDep, ProfileWriter, Reader
from api.schemas import CustomerIn, CustomerOut, Id
from decisioning.domain import check_context
from decisioning.eligibility import CustomerFacts
from decisioning.errors import NotFound
from decisioning.sql import repositories as repo
from decisioning.sql.session import unit_of_work

router = APIRouter(tags=["customers"])


@router.put("/customers/{customer_id}", response_model=CustomerOut)
def upsert_customer(
    customer_id: Id, body: CustomerIn, engine: EngineDep, _role: ProfileWriter
) -> CustomerOut:
    """Merge attributes into the stored profile; a null removes an attribute."""
    check_context(body.attributes, prefix="attributes")
    CustomerFacts.of(body.attributes, prefix="attributes")
    with unit_of_work(engine.db) as connection:
        merged = repo.upsert_customer(connection, customer_id, body.attributes, datetime.now(UTC))
    return CustomerOut(customer_id=customer_id, attributes=merged)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: str, engine: EngineDep, _role: Reader) -> CustomerOut:
    with engine.db.connect() as connection:
        attributes = repo.customer_profile(connection, customer_id)
    if attributes is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer_id")
    return CustomerOut(customer_id=customer_id, attributes=attributes)
