"""Several processes decide for the same customers and offers at once: budgets and caps bind, and
afterwards no budget is overspent, no cap exceeded, and the log agrees with the counters exactly.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from decisioning.domain import ChannelCaps, ContactPolicy, DecisionRequest
from decisioning.sql.tables import budgets, to_units
from tests.conftest import open_engine
from tests.support import (
    NOW,
    budget,
    charges_in_log,
    configure,
    contacts_in_log,
    logged_decisions,
    offer,
    recorded_contacts,
    run_in_processes,
)

PROCESSES = 4
DECISIONS_PER_PROCESS = 500
CUSTOMERS = 6
POLICY = ContactPolicy(
    channel_caps={"app_banner": ChannelCaps(per_day=2, per_week=8)},
    total_per_week=9,
    offer_max_contacts=3,
    offer_window_days=7,
)
CONTEXT = {"age": 40, "risk_tolerance": "C3", "lifecycle": "mature"}


def _worker(url: str, seed: int, start: Any, results: Any, group_size: int = 1) -> None:
    engine = open_engine(url)
    start.wait()  # every process starts deciding at the same moment
    shown = 0
    for first in range(0, DECISIONS_PER_PROCESS, group_size):
        # Without a group when group_size is 1: each decision its own transaction.
        with engine.group() if group_size > 1 else nullcontext():
            for i in range(first, first + group_size):
                # All processes walk the same clock, so they collide on the same customer and hour.
                customer = f"customer-{(i + seed) % CUSTOMERS}"
                decision = engine.decide(
                    DecisionRequest(customer, "app_banner", context=CONTEXT, limit=2),
                    now=NOW + timedelta(hours=i),
                )
                shown += len(decision.offers)
    engine.db.dispose()
    results.put(shown)


def _grouped_worker(url: str, seed: int, start: Any, results: Any) -> None:
    """Decides in groups of 10 (the service's group commit), each group one transaction."""
    _worker(url, seed, start, results, group_size=10)


@pytest.mark.parametrize(
    ("database", "worker"),
    [("sqlite", _worker), ("postgres", _worker), ("sqlite", _grouped_worker)],
    ids=["sqlite", "postgres", "sqlite-grouped"],
)
def test_budgets_and_caps_hold_across_processes(
    database: str, worker: Any, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{database}_url"))
    setup = open_engine(url)
    configure(
        setup,
        [
            offer("loan", value=900.0, cost=2.5),
            offer("card", value=800.0),
            offer("fund", value=700.0),
            offer("deposit", value=10.0),
        ],
        [
            budget("loan-money", "loan", 100.0, kind="money"),
            budget("card-count", "card", 30),
            budget("fund-count", "fund", 25),
        ],
        policy=POLICY,
    )
    shown = sum(run_in_processes(worker, url, PROCESSES))

    with setup.db.connect() as connection:
        budget_rows = {r.budget_id: r for r in connection.execute(select(budgets))}
    # Budgets bind and are never overspent.
    for row in budget_rows.values():
        assert 0 <= row.spent_units <= row.amount_units
    assert budget_rows["loan-money"].spent_units == to_units(100.0)  # 40 contacts x 2.5
    assert budget_rows["card-count"].spent_units == to_units(30)
    assert budget_rows["fund-count"].spent_units == to_units(25)

    # The log agrees with the counters exactly.
    log = logged_decisions(setup)
    assert len(log) == PROCESSES * DECISIONS_PER_PROCESS
    assert charges_in_log(setup) == {b: r.spent_units for b, r in budget_rows.items()}
    contacts = contacts_in_log(setup)
    assert len(contacts) == len(recorded_contacts(setup)) == shown  # histories agree with the log

    # No cap is exceeded in any rolling window.
    by_customer = defaultdict(list)
    for contact in contacts:
        by_customer[contact.customer_id].append(contact)
    for history in by_customer.values():
        for contact in history:
            assert _within(history, contact.contacted_at, days=1) <= 2
            assert _within(history, contact.contacted_at, days=7) <= 8
            assert _within(history, contact.contacted_at, days=7, offer_id=contact.offer_id) <= 3
    assert any("BUDGET_EXHAUSTED" in row.candidates.values() for row in log)
    assert any("CHANNEL_DAILY_CAP" in row.candidates.values() for row in log)
    setup.db.dispose()


def _within(history: list[Any], at: Any, *, days: float, offer_id: str | None = None) -> int:
    """Contacts in the window of ``days`` that ends at ``at`` (inclusive, as the engine counts)."""
    return sum(
        1
        for c in history
        if at - timedelta(days=days) <= c.contacted_at <= at
        and (offer_id is None or c.offer_id == offer_id)
    )
