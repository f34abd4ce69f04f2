"""Dual-price pacing: the price steps with the spend, and arbitration pays it."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import select

from decisioning.budgets import (
    BUDGET_PRICE,
    INITIAL_PRICE,
    PRICE_CEILING,
    PRICE_FLOOR,
    PRICE_LEARNING_RATE,
    PRICE_STEP,
    dual_price,
    next_price,
    update_prices,
)
from decisioning.catalog import put_budget
from decisioning.domain import Budget, DecisionRequest
from decisioning.errors import InvalidInput
from decisioning.sql.repositories import budget_states
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import budgets
from tests.conftest import open_engine
from tests.support import NOW, configure, offer


def _budget(pacing: str = "dual", amount: float = 100.0) -> Budget:
    return Budget(
        "b",
        "offer",
        "card",
        "money",
        amount,
        NOW,
        NOW + timedelta(days=10),
        pacing=pacing,  # type: ignore[arg-type]
    )


def test_next_price_is_a_multiplicative_step_on_the_relative_gap() -> None:
    assert next_price(2.0, 10.0, 10.0) == pytest.approx(2.0)  # on target: unchanged
    assert next_price(2.0, 15.0, 10.0) == pytest.approx(2.0 * math.exp(PRICE_LEARNING_RATE * 0.5))
    assert next_price(2.0, 0.0, 10.0) == pytest.approx(2.0 * math.exp(-PRICE_LEARNING_RATE))
    assert next_price(2.0, 1e6, 10.0) == pytest.approx(2.0 * math.exp(2 * PRICE_LEARNING_RATE))
    assert next_price(PRICE_FLOOR, 0.0, 10.0) == PRICE_FLOOR
    assert next_price(PRICE_CEILING, 1e6, 10.0) == PRICE_CEILING


def test_only_dual_budgets_have_a_price_and_no_pacing_cap() -> None:
    assert dual_price(_budget("even"), None) == 0.0
    assert dual_price(_budget("dual"), None) == INITIAL_PRICE
    assert _budget("dual").cap_at(NOW + timedelta(days=1)) == 100.0
    assert _budget("even").cap_at(NOW + timedelta(days=1)) == pytest.approx(15.0)
    with pytest.raises(InvalidInput) as error:
        _budget("fast")
    assert error.value.field == "pacing"


def test_prices_step_once_per_step_against_the_adaptive_target(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    configure(engine, [offer("card")])
    budget = _budget()
    with unit_of_work(engine.db) as connection:
        put_budget(connection, budget, NOW)
        # Day one spends 30 of 100 where the even share of the rest is 10: the price rises.
        connection.execute(budgets.update().values(spent_units=30 * 10_000))
        assert update_prices(connection, [budget], NOW + PRICE_STEP / 2) == 0
        assert update_prices(connection, [budget], NOW + PRICE_STEP) == 1
        assert update_prices(connection, [budget], NOW + PRICE_STEP) == 0  # not twice a step
        first = budget_states(connection, "b")["b"].price
        assert first == pytest.approx(next_price(INITIAL_PRICE, 30.0, 10.0))
        # Day two spends nothing: the target is the even share of the 70 left over 9 days.
        assert update_prices(connection, [budget], NOW + 2 * PRICE_STEP) == 1
        second = budget_states(connection, "b")["b"].price
        assert second == pytest.approx(next_price(first or 0.0, 0.0, 70.0 / 9))
        assert second is not None and first is not None and second < first
        row = connection.execute(select(budgets.c.price_spent_units)).scalar_one()
        assert row == 30 * 10_000
    engine.db.dispose()


def test_arbitration_pays_the_price_of_a_dual_budget(sqlite_url: str) -> None:
    """Two offers of equal worth; the card pays its dual budget's price in arbitration, and is
    not made at all once that price exceeds what a contact earns over its cost."""
    engine = open_engine(sqlite_url, epsilon=0.0)
    configure(
        engine,
        [offer("card", product="card", value=100.0), offer("loan", product="loan", value=100.0)],
    )
    budget = _budget()
    with unit_of_work(engine.db) as connection:
        put_budget(connection, budget, NOW)
    engine.catalog.invalidate()
    answer = engine.decide(DecisionRequest("c-1", "app_banner", context={}), now=NOW)
    score, ranked = answer.explanation["card"]  # type: ignore[misc]
    cost = engine.catalog.current().offers["card"].cost
    assert ranked == pytest.approx(score * 100.0 - cost - INITIAL_PRICE * cost)
    with unit_of_work(engine.db) as connection:
        connection.execute(budgets.update().values(price=PRICE_CEILING))
    engine.budget_states.clear()  # as run_periodic_jobs does once it has stepped a price
    answer = engine.decide(DecisionRequest("c-2", "app_banner", context={}), now=NOW)
    assert [o.offer_id for o in answer.offers] == ["loan"]
    assert answer.explanation["card"] == BUDGET_PRICE
    engine.db.dispose()
