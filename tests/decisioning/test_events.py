"""Outcome events: idempotent by id, atomic per batch, joined to their decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from decisioning.domain import DecisionRequest, Event
from decisioning.engine import DecisionEngine
from decisioning.errors import InvalidInput
from decisioning.events import EventReceipt, record_events
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import events
from tests.conftest import open_engine
from tests.support import NOW, configure, offer


@pytest.fixture
def decided(database_url: str) -> tuple[DecisionEngine, str, str]:
    engine = open_engine(database_url)
    configure(engine, [offer("loan")])
    decision = engine.decide(
        DecisionRequest("c-1", "app_banner", context={"risk_tolerance": "C2"}), now=NOW
    )
    yield engine, decision.decision_id, decision.offers[0].offer_id
    engine.db.dispose()


def send(engine: DecisionEngine, batch: list[Event]) -> EventReceipt:
    with unit_of_work(engine.db, durable=True) as connection:
        return record_events(
            connection, batch, engine.catalog.current().contact_policy, NOW + timedelta(hours=1)
        )


def stored(engine: DecisionEngine) -> int:
    with engine.db.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


def event(
    event_id: str, decision_id: str, offer_id: str, kind: str = "click", value: float = 0.0
) -> Event:
    return Event(event_id, decision_id, offer_id, kind, NOW + timedelta(minutes=5), value)  # type: ignore[arg-type]


def test_a_replayed_event_is_acknowledged_and_counted_once(decided) -> None:
    engine, decision_id, offer_id = decided
    assert send(engine, [event("e-1", decision_id, offer_id)]) == EventReceipt(1, 0)
    assert send(engine, [event("e-1", decision_id, offer_id)]) == EventReceipt(0, 1)
    assert send(
        engine, [event("e-2", decision_id, offer_id), event("e-2", decision_id, offer_id)]
    ) == EventReceipt(1, 1)
    assert stored(engine) == 2


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"decision_id": "nope"}, "events[1].decision_id"),
        ({"offer_id": "other-offer"}, "events[1].offer_id"),
        ({"value": float("nan")}, "events[1].value"),
        ({"event_id": ""}, "events[1].event_id"),
        ({"type": "purchase"}, "events[1].type"),
    ],
)
def test_a_bad_event_rejects_the_whole_batch(decided, bad: dict[str, object], field: str) -> None:
    engine, decision_id, offer_id = decided
    good = event("e-good", decision_id, offer_id)
    values = {
        "event_id": "e-bad",
        "decision_id": decision_id,
        "offer_id": offer_id,
        "kind": "click",
        **bad,
    }
    broken = event(
        values["event_id"],
        values["decision_id"],
        values["offer_id"],
        values.get("type", "click"),
        values.get("value", 0.0),
    )
    with pytest.raises(InvalidInput) as error:
        send(engine, [good, broken])
    assert error.value.field == field
    assert stored(engine) == 0


def test_events_from_the_future_and_oversized_batches_are_rejected(decided) -> None:
    engine, decision_id, offer_id = decided
    future = Event("e-f", decision_id, offer_id, "click", NOW + timedelta(days=2))
    with pytest.raises(InvalidInput) as error:
        send(engine, [future])
    assert error.value.field == "events[0].occurred_at"
    with pytest.raises(InvalidInput) as error:
        send(engine, [event(f"e-{i}", decision_id, offer_id) for i in range(1001)])
    assert error.value.field == "events"
    assert stored(engine) == 0
