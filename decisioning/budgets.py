"""Budget checks before scoring; the binding check is the conditional UPDATE in the repository.

The pre-check keeps offers whose budget is spent out of the draw (so their exclusion is logged
with a reason); ``repositories.reserve_budget`` then makes the spend atomic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
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


class BudgetStateCache:
    """Each budget's last known state in this process, kept for ``max_age_seconds``.

    The state only serves the pre-check that keeps offers whose budget looks spent out of the
    draw; the binding check is the reservation's conditional UPDATE. So a state up to
    ``max_age_seconds`` old (other workers' spend since, a price stepped since) never lets a
    budget be overspent: at worst a draw reaches a reservation that fails, and the entry is
    dropped. This process's own reservations are added once their decision has committed, so a
    single worker's states stay exact. A new catalogue version (amounts, limits) empties it.
    """

    def __init__(self, max_age_seconds: float) -> None:
        self._max_age = max_age_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[BudgetState, float]] = {}
        self._catalog_version: int | None = None

    def states(
        self,
        budget_ids: Iterable[str],
        catalog_version: int,
        read: Callable[[list[str]], dict[str, BudgetState]],
    ) -> dict[str, BudgetState]:
        """The states of ``budget_ids``, those missing or too old ``read`` from the database."""
        if catalog_version != self._catalog_version:
            with self._lock:
                self._entries, self._catalog_version = {}, catalog_version
        now = time.monotonic()
        found: dict[str, BudgetState] = {}
        missing: list[str] = []
        for budget_id in budget_ids:
            entry = self._entries.get(budget_id)
            if entry is not None and now - entry[1] < self._max_age:
                found[budget_id] = entry[0]
            else:
                missing.append(budget_id)
        if missing:
            fresh = read(missing)
            with self._lock:
                self._entries.update((b, (state, now)) for b, state in fresh.items())
            found.update(fresh)
        return found

    def add_spend(self, charges: Iterable[tuple[str, int]], today: str) -> None:
        """A committed decision's reservations, as the reservation's UPDATE made them."""
        with self._lock:
            for budget_id, units in charges:
                entry = self._entries.get(budget_id)
                if entry is not None:
                    s, read_at = entry
                    spent_today = s.day_spent_units if s.day == today else 0
                    spent = BudgetState(
                        budget_id, s.amount_units, s.daily_limit_units, s.spent_units + units,
                        today, spent_today + units, s.price,
                    )  # fmt: skip
                    self._entries[budget_id] = (spent, read_at)

    def forget(self, budget_id: str) -> None:
        with self._lock:
            self._entries.pop(budget_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}


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
