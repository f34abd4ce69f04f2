"""Budget checks before scoring; the binding check is the conditional UPDATE in the repository.

The pre-check keeps offers whose budget is spent out of the draw (so their exclusion is logged
with a reason); ``repositories.reserve_budget`` then makes the spend atomic.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from decisioning.domain import Budget
from decisioning.sql.repositories import BudgetState
from decisioning.sql.tables import to_units

BUDGET_OUTSIDE_FLIGHT = "BUDGET_OUTSIDE_FLIGHT"
BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
BUDGET_PACING = "BUDGET_PACING"
BUDGET_DAILY_LIMIT = "BUDGET_DAILY_LIMIT"


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
