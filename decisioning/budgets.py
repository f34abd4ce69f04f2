"""Budget checks before scoring; the binding check is the conditional UPDATE in the repository.

The pre-check keeps offers whose budget is spent out of the draw (so their exclusion is logged
with a reason); ``repositories.reserve_budget`` then makes the spend atomic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from decisioning.domain import Budget
from decisioning.sql import repositories as repo
from decisioning.sql.repositories import BudgetState
from decisioning.sql.tables import to_units

BUDGET_OUTSIDE_FLIGHT = "BUDGET_OUTSIDE_FLIGHT"
BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
BUDGET_PACING = "BUDGET_PACING"
BUDGET_DAILY_LIMIT = "BUDGET_DAILY_LIMIT"
BUDGET_PRICE = "BUDGET_PRICE"
"""Dual pacing: the offer earns less than its budget's price times what it would charge."""
BUDGET_REASONS = frozenset(
    {BUDGET_OUTSIDE_FLIGHT, BUDGET_EXHAUSTED, BUDGET_PACING, BUDGET_DAILY_LIMIT, BUDGET_PRICE}
)
"""Every reason for which a budget, not the offer's eligibility, kept an offer out."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def business_day(now: datetime, timezone: str) -> str:
    """The budget day ``now`` falls in, as YYYY-MM-DD in the bank's time zone."""
    return now.astimezone(zone(timezone)).date().isoformat()


def paced_cap_units(budget: Budget, now: datetime) -> int:
    return to_units(budget.cap_at(now))


def budget_reason(
    budget: Budget, state: BudgetState | None, charge_units: int, now: datetime, today: str
) -> str | None:
    """Why one more charge of ``charge_units`` may not be spent now, or None."""
    if state is None or not budget.flight_start <= now < budget.flight_end:
        return BUDGET_OUTSIDE_FLIGHT
    spent = state.spent_units + charge_units
    if spent > state.amount_units:
        return BUDGET_EXHAUSTED
    if spent > paced_cap_units(budget, now):
        return BUDGET_PACING
    if state.daily_limit_units is not None:
        spent_today = state.day_spent_units if state.day == today else 0
        if spent_today + charge_units > state.daily_limit_units:
            return BUDGET_DAILY_LIMIT
    return None


# --- dual-price pacing ---------------------------------------------------------------------------
# Dual mirror descent (Balseiro, Lu, Mirrokni 2020) with the entropic mirror map: each step
# multiplies the price by exp(rate x (spend / target - 1)), the target being the even share of
# what is left (remaining budget over remaining time, their "adaptive" target). Arbitration
# subtracts price x charge, so a scarce budget goes where value per unit of charge is highest.
INITIAL_PRICE = 1.0
"""Until the spend says otherwise, a contact must earn its charge twice over."""
PRICE_FLOOR, PRICE_CEILING = 1e-3, 1e4
PRICE_STEP = timedelta(hours=24)
"""One step per day of traffic, so the day's rhythm (quiet nights, busy evenings) cancels."""
PRICE_LEARNING_RATE = 0.7


def dual_price(budget: Budget, state: BudgetState | None) -> float:
    """The price arbitration charges per unit of this budget (0 unless it is dual-paced)."""
    if budget.pacing != "dual":
        return 0.0
    return INITIAL_PRICE if state is None or state.price is None else state.price


def next_price(price: float, spent: float, target: float) -> float:
    """One mirror-descent step from the step's spend and its target (same units)."""
    gap = min(2.0, spent / target - 1.0) if target > 0 else 2.0 * (spent > 0)
    return min(PRICE_CEILING, max(PRICE_FLOOR, price * math.exp(PRICE_LEARNING_RATE * gap)))


def update_prices(connection: Connection, budgets: Iterable[Budget], now: datetime) -> int:
    """Step the price of every dual-paced budget whose step has run its course; returns how
    many moved. A budget never priced starts at ``INITIAL_PRICE`` from its flight's start."""
    moved = 0
    for budget in budgets:
        if budget.pacing != "dual" or now < budget.flight_start:
            continue
        row = repo.budget_price(connection, budget.budget_id)
        if row is None:
            continue
        price, since, spent_then, spent_now = row
        if price is None:
            price, since, spent_then = INITIAL_PRICE, budget.flight_start, 0
        if now - since < PRICE_STEP or since >= budget.flight_end:
            continue
        remaining = max(0, to_units(budget.amount) - spent_then)
        target = remaining * (now - since) / (budget.flight_end - since)
        price = next_price(price, spent_now - spent_then, target)
        repo.set_budget_price(connection, budget.budget_id, price, now, spent_now)
        moved += 1
    return moved
