"""POST /v1/events: outcomes of decisions or of customers, one or a batch, idempotent by
``event_id``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from api.deps import Channel, EngineDep
from api.schemas import EventBatchIn, EventReceiptOut, Events
from decisioning.domain import Event
from decisioning.events import record_events
from decisioning.sql.session import unit_of_work

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventReceiptOut)
async def post_events(body: Events, engine: EngineDep, _role: Channel) -> EventReceiptOut:
    """Store the events durably before answering; a replayed ``event_id`` counts as a duplicate.
    \f
    ``async`` for the same reason as ``POST /v1/decisions``: short, and no thread hand-off.
    """
    now = datetime.now(UTC)
    items = body.events if isinstance(body, EventBatchIn) else [body]
    batch = [
        Event(
            event_id=e.event_id,
            decision_id=e.decision_id,
            offer_id=e.offer_id,
            customer_id=e.customer_id,
            product=e.product,
            type=e.type,
            occurred_at=e.occurred_at or now,
            value=e.value,
        )
        for e in items
    ]
    catalog = engine.catalog.current()
    with unit_of_work(engine.db, durable=True) as connection:
        window = timedelta(hours=engine.settings.attribution_window_hours)
        receipt = record_events(
            connection, batch, catalog.contact_policy, now, window, catalog.offers
        )
    return EventReceiptOut(stored=receipt.stored, duplicates=receipt.duplicates)
