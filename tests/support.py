"""Helpers for tests that set up a catalogue and read back what the engine stored."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select

from decisioning.catalog import put_budget, put_campaign, put_contact_policy, put_offer
from decisioning.contact_policy import (
    CHANNEL_HORIZON,
    OFFER_HORIZON,
    ContactHistory,
    microseconds,
)
from decisioning.domain import Budget, ContactPolicy, Event, Offer
from decisioning.engine import DecisionEngine
from decisioning.events import MAX_BATCH, record_events
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import budgets, customers, decisions

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def offer(offer_id: str, **fields: Any) -> Offer:
    """An offer on the app banner and SMS with neutral defaults, overridable."""
    values: dict[str, Any] = {
        "name": offer_id.title(),
        "product": offer_id,
        "category": "test",
        "channels": ("app_banner", "sms"),
        "value": 100.0,
        "cost": 1.0,
    }
    values.update(fields)
    return Offer(offer_id=offer_id, **values)


def budget(budget_id: str, target: str, amount: float, **fields: Any) -> Budget:
    values: dict[str, Any] = {
        "scope": "offer",
        "kind": "count",
        "flight_start": NOW - timedelta(days=1),
        "flight_end": NOW + timedelta(days=30),
        "pacing": "asap",
    }
    values.update(fields)
    return Budget(budget_id=budget_id, target_id=target, amount=amount, **values)


def configure(
    engine: DecisionEngine,
    offers: Iterable[Offer] = (),
    budget_list: Iterable[Budget] = (),
    policy: ContactPolicy | None = None,
    campaigns: Iterable[str] = (),
) -> None:
    with unit_of_work(engine.db) as connection:
        for campaign in campaigns:
            put_campaign(connection, campaign, campaign, NOW)
        for item in offers:
            put_offer(connection, item, NOW)
        for item in budget_list:
            put_budget(connection, item, NOW)
        put_contact_policy(connection, policy or ContactPolicy(), NOW)
    engine.catalog.invalidate()


def send_outcome(
    engine: DecisionEngine, event_id: str, decision_id: str, offer_id: str, kind: str, at: datetime
) -> None:
    """Record one outcome event of a logged decision, as the events endpoint would."""
    with unit_of_work(engine.db) as connection:
        record_events(
            connection,
            [Event(event_id, decision_id, offer_id, kind, at)],
            engine.catalog.current().contact_policy,
            at,
        )


def send_events(engine: DecisionEngine, events: list[Event], at: datetime) -> None:
    """Record ``events`` in batches as the events endpoint would, with a 30-day window."""
    catalog = engine.catalog.current()
    for start in range(0, len(events), MAX_BATCH):
        with unit_of_work(engine.db) as connection:
            record_events(
                connection,
                events[start : start + MAX_BATCH],
                catalog.contact_policy,
                at,
                timedelta(days=30),
                catalog.offers,
            )


def spent_units(engine: DecisionEngine) -> dict[str, int]:
    with engine.db.connect() as connection:
        return {
            row[0]: row[1]
            for row in connection.execute(select(budgets.c.budget_id, budgets.c.spent_units))
        }


def logged_decisions(engine: DecisionEngine) -> list[Any]:
    with engine.db.connect() as connection:
        return list(connection.execute(select(decisions).order_by(decisions.c.created_at)))


class Contact(NamedTuple):
    customer_id: str
    offer_id: str
    channel: str
    contacted_at: datetime


def contacts_in_log(engine: DecisionEngine) -> list[Contact]:
    """One contact per offer a logged decision made, on its channel at its time."""
    return [
        Contact(row.customer_id, shown["offer_id"], row.channel, row.created_at)
        for row in logged_decisions(engine)
        for shown in row.offers
    ]


def contact_histories(engine: DecisionEngine) -> dict[str, ContactHistory]:
    """Customer id -> the contact history stored in their row, where there is one."""
    with engine.db.connect() as connection:
        rows = connection.execute(select(customers.c.customer_id, customers.c.contact_history))
        return {c: ContactHistory.from_json(h) for c, h in rows if h is not None}


def recorded_contacts(engine: DecisionEngine) -> list[tuple[str, str]]:
    """(customer id, offer id) of every contact the stored histories hold, sorted, after
    checking that they hold exactly the contacts of the decision log that a history keeps:
    those within a horizon of the customer's last contact (every test stays far below the
    bounds on how many it keeps, and its workers' clocks within a horizon of each other)."""
    made: dict[str, list[Contact]] = {}
    for contact in contacts_in_log(engine):
        made.setdefault(contact.customer_id, []).append(contact)
    expected = {}
    for customer_id, contacts in made.items():
        last = max(microseconds(c.contacted_at) for c in contacts)
        history = ContactHistory()
        for contact in contacts:
            at = microseconds(contact.contacted_at)
            if at >= last - CHANNEL_HORIZON:
                history.channels.setdefault(contact.channel, []).append(at)
            if at >= last - OFFER_HORIZON:
                history.offers.setdefault(contact.offer_id, []).append(at)
        for times in (*history.channels.values(), *history.offers.values()):
            times.sort()
        expected[customer_id] = history
    stored = contact_histories(engine)
    assert stored == expected
    return sorted((c, o) for c, h in stored.items() for o, times in h.offers.items() for _ in times)


def charges_in_log(engine: DecisionEngine) -> dict[str, int]:
    """Budget id -> the sum of the charges the decision log records."""
    total: dict[str, int] = {}
    for row in logged_decisions(engine):
        for shown in row.offers:
            for budget_id, units in shown["charges"].items():
                total[budget_id] = total.get(budget_id, 0) + units
    return total


def run_in_processes(worker: Callable[..., None], url: str, processes: int) -> list[Any]:
    """Run ``worker(url, seed, start_barrier, results_queue)`` in ``processes`` spawned
    processes that start together; returns what each put on the queue."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=worker, args=(url, seed, start, results))
        for seed in range(processes)
    ]
    for process in workers:
        process.start()
    answers = [results.get(timeout=300) for _ in workers]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    return answers
