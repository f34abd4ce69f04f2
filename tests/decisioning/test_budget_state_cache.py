"""The process's cache of budget states: exact for its own spend, never a path to overspend."""

from __future__ import annotations

import time

from decisioning.budgets import BUDGET_EXHAUSTED, BudgetStateCache
from decisioning.domain import DecisionRequest
from decisioning.engine import DecisionEngine
from decisioning.sql.repositories import BudgetState
from decisioning.sql.tables import to_units
from tests.conftest import open_engine
from tests.support import NOW, budget, charges_in_log, configure, offer, spent_units


def _state(spent: int = 0, day: str = "2026-01-01", day_spent: int = 0) -> BudgetState:
    return BudgetState("b", 1000, 500, spent, day, day_spent, None)


def test_own_spend_is_added_as_the_reservation_makes_it() -> None:
    reads: list[list[str]] = []

    def read(ids: list[str]) -> dict[str, BudgetState]:
        reads.append(ids)
        return {"b": _state(spent=10, day="2026-01-01", day_spent=4)}

    cache = BudgetStateCache(max_age_seconds=60)
    assert cache.states(["b"], 1, read)["b"].spent_units == 10
    cache.add_spend([("b", 3)], "2026-01-01")
    state = cache.states(["b"], 1, read)["b"]
    assert (state.spent_units, state.day, state.day_spent_units) == (13, "2026-01-01", 7)
    cache.add_spend([("b", 2)], "2026-01-02")  # a new budget day starts from 0
    state = cache.states(["b"], 1, read)["b"]
    assert (state.spent_units, state.day, state.day_spent_units) == (15, "2026-01-02", 2)
    assert reads == [["b"]]  # read once, kept since


def test_old_entries_a_new_catalogue_and_a_lost_race_read_again() -> None:
    reads: list[list[str]] = []

    def read(ids: list[str]) -> dict[str, BudgetState]:
        reads.append(ids)
        return {b: _state() for b in ids}

    cache = BudgetStateCache(max_age_seconds=0.05)
    cache.states(["b"], 1, read)
    time.sleep(0.06)
    cache.states(["b"], 1, read)  # too old
    cache.states(["b"], 2, read)  # the catalogue changed
    cache.forget("b")
    cache.states(["b"], 2, read)  # a reservation found it spent
    cache.add_spend([("c", 1)], "2026-01-01")  # never read: nothing to add to
    cache.states(["c"], 2, read)
    assert reads == [["b"], ["b"], ["b"], ["b"], ["c"]]


def test_spend_by_another_worker_is_caught_by_the_reservation(sqlite_url: str) -> None:
    """Two engines on one database (two workers): the second spends the budget while the first
    still holds its old state. The first one's draw then loses the reservation: the offer is
    excluded as spent, nothing is overspent, and the log agrees with the counter."""
    first = open_engine(sqlite_url, refresh_seconds=60.0, epsilon=0.0)
    configure(first, [offer("card"), offer("loan", value=1.0)], [budget("b", "card", 2)])
    second = open_engine(sqlite_url, refresh_seconds=60.0, epsilon=0.0)

    def decide(engine: DecisionEngine, customer: str) -> list[str]:
        request = DecisionRequest(customer, "app_banner", context={}, limit=1)
        return [o.offer_id for o in engine.decide(request, now=NOW).offers]

    assert decide(first, "c-1") == ["card"]  # the first worker now holds "1 of 2 spent"
    assert decide(second, "c-2") == ["card"]  # the second spends the last one
    answer = first.decide(DecisionRequest("c-3", "app_banner", context={}), now=NOW)
    assert [o.offer_id for o in answer.offers] == ["loan"]
    assert answer.explanation["card"] == BUDGET_EXHAUSTED
    assert spent_units(first)["b"] == charges_in_log(first)["b"] == to_units(2)
    first.db.dispose()
    second.db.dispose()
