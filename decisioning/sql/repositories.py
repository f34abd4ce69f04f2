"""Every statement the engine runs. Functions take a ``Connection`` inside the caller's unit of
work and never commit: a decision's budget reservation, contact records and log row land together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from decisioning.sql.tables import (
    api_keys,
    budgets,
    campaigns,
    cell_stats,
    config_version,
    cooldowns,
    customers,
    decisions,
    events,
    exposures,
    feedback_actions,
    policy_snapshots,
)


def dialect_insert(connection: Connection, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(table)


# --- catalogue -----------------------------------------------------------------------------------


def bump_config_version(connection: Connection) -> int:
    """Mark the catalogue as changed; workers reload it when they see the new version."""
    return int(
        connection.execute(
            update(config_version)
            .where(config_version.c.id == 1)
            .values(version=config_version.c.version + 1)
            .returning(config_version.c.version)
        ).scalar_one()
    )


def config_version_now(connection: Connection) -> int:
    return int(connection.execute(select(config_version.c.version)).scalar_one())


def load_documents(connection: Connection, table: Table, key: str) -> dict[str, dict[str, Any]]:
    """All rows of a document table: id -> document."""
    return {
        row[0]: row[1]
        for row in connection.execute(select(table.c[key], table.c.document).order_by(table.c[key]))
    }


def load_document(connection: Connection, table: Table, key: str, value: str | int) -> Any:
    return connection.execute(
        select(table.c.document).where(table.c[key] == value)
    ).scalar_one_or_none()


def upsert_document(
    connection: Connection,
    table: Table,
    key: str,
    value: str | int,
    document: dict[str, Any],
    now: datetime,
) -> bool:
    """Insert or replace a document; returns True when it was new."""
    existed = load_document(connection, table, key, value) is not None
    statement = dialect_insert(connection, table).values(
        {key: value, "document": document, "updated_at": now}
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={"document": statement.excluded.document, "updated_at": now},
        )
    )
    return not existed


def delete_row(connection: Connection, table: Table, key: str, value: str) -> bool:
    return bool(connection.execute(delete(table).where(table.c[key] == value)).rowcount)


def load_campaign(connection: Connection, campaign_id: str) -> str | None:
    """The campaign's name, or None."""
    return connection.execute(
        select(campaigns.c.name).where(campaigns.c.campaign_id == campaign_id)
    ).scalar_one_or_none()


def upsert_campaign(connection: Connection, campaign_id: str, name: str, now: datetime) -> bool:
    existed = load_campaign(connection, campaign_id) is not None
    statement = dialect_insert(connection, campaigns).values(
        campaign_id=campaign_id, name=name, updated_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[campaigns.c.campaign_id], set_={"name": name, "updated_at": now}
        )
    )
    return not existed


def list_campaigns(connection: Connection) -> dict[str, str]:
    rows = connection.execute(select(campaigns.c.campaign_id, campaigns.c.name))
    return {campaign_id: name for campaign_id, name in rows}


def save_budget(
    connection: Connection,
    budget_id: str,
    document: dict[str, Any],
    amount_units: int,
    daily_limit_units: int | None,
    now: datetime,
) -> bool:
    """Insert or replace a budget's settings, keeping what it has spent."""
    statement = dialect_insert(connection, budgets).values(
        budget_id=budget_id,
        document=document,
        amount_units=amount_units,
        daily_limit_units=daily_limit_units,
        spent_units=0,
        day="",
        day_spent_units=0,
        updated_at=now,
    )
    existed = load_document(connection, budgets, "budget_id", budget_id) is not None
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[budgets.c.budget_id],
            set_={
                "document": document,
                "amount_units": amount_units,
                "daily_limit_units": daily_limit_units,
                "updated_at": now,
            },
        )
    )
    return not existed


@dataclass(frozen=True, slots=True)
class BudgetState:
    budget_id: str
    amount_units: int
    daily_limit_units: int | None
    spent_units: int
    day: str
    day_spent_units: int
    price: float | None = None


_BUDGET_STATE_COLUMNS = (
    budgets.c.budget_id,
    budgets.c.amount_units,
    budgets.c.daily_limit_units,
    budgets.c.spent_units,
    budgets.c.day,
    budgets.c.day_spent_units,
    budgets.c.price,
)


def budget_states(connection: Connection, budget_id: str | None = None) -> dict[str, BudgetState]:
    """The spend of one budget, or of all."""
    statement = select(*_BUDGET_STATE_COLUMNS)
    if budget_id is not None:
        statement = statement.where(budgets.c.budget_id == budget_id)
    return {row[0]: BudgetState(*row) for row in connection.execute(statement)}


def budget_price(connection: Connection, budget_id: str) -> Any:
    """(price, start of its step, spend then, spend now) of one budget, or None."""
    return connection.execute(
        select(
            budgets.c.price,
            budgets.c.price_updated_at,
            budgets.c.price_spent_units,
            budgets.c.spent_units,
        ).where(budgets.c.budget_id == budget_id)
    ).first()


def set_budget_price(
    connection: Connection, budget_id: str, price: float, now: datetime, spent_units: int
) -> None:
    connection.execute(
        update(budgets)
        .where(budgets.c.budget_id == budget_id)
        .values(price=price, price_updated_at=now, price_spent_units=spent_units)
    )


# --- customers and contacts ----------------------------------------------------------------------


def upsert_customer(
    connection: Connection, customer_id: str, attributes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Merge ``attributes`` into the stored profile (a null value removes an attribute)."""
    current = connection.execute(
        select(customers.c.attributes).where(customers.c.customer_id == customer_id)
    ).scalar_one_or_none()
    merged = {**(current or {}), **attributes}
    merged = {k: v for k, v in merged.items() if v is not None}
    statement = dialect_insert(connection, customers).values(
        customer_id=customer_id, attributes=merged, updated_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[customers.c.customer_id],
            set_={"attributes": merged, "updated_at": now},
        )
    )
    return merged


def customer_profile(connection: Connection, customer_id: str) -> dict[str, Any] | None:
    value = connection.execute(
        select(customers.c.attributes).where(customers.c.customer_id == customer_id)
    ).scalar_one_or_none()
    return None if value is None else dict(value)


def start_cooldown(
    connection: Connection, customer_id: str, offer_id: str, until: datetime
) -> None:
    """Set the cool-down's end to the later of the stored one and ``until``."""
    statement = dialect_insert(connection, cooldowns).values(
        customer_id=customer_id, offer_id=offer_id, until=until
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[cooldowns.c.customer_id, cooldowns.c.offer_id],
            set_={"until": until},
            where=cooldowns.c.until < until,
        )
    )


# --- decisions and events ------------------------------------------------------------------------


def decision_rows(connection: Connection, decision_ids: Iterable[str]) -> dict[str, Any]:
    """decision_id -> (customer_id, offers) for the given ids that exist."""
    rows = connection.execute(
        select(
            decisions.c.decision_id,
            decisions.c.customer_id,
            decisions.c.offers,
            decisions.c.memberships,
        ).where(decisions.c.decision_id.in_(list(decision_ids)))
    )
    return {row[0]: row for row in rows}


def exposed_experiments(
    connection: Connection, customer_ids: Iterable[str]
) -> dict[str, list[str]]:
    """customer -> the experiments (and holdouts) it was exposed in."""
    ids = list(customer_ids)
    found: dict[str, list[str]] = {}
    if ids:
        rows = connection.execute(
            select(exposures.c.unit_id, exposures.c.experiment_id).where(
                exposures.c.unit_id.in_(ids)
            )
        )
        for unit_id, experiment_id in rows:
            found.setdefault(unit_id, []).append(experiment_id)
    return found


def get_decision(connection: Connection, decision_id: str) -> Any:
    return connection.execute(
        select(decisions).where(decisions.c.decision_id == decision_id)
    ).one_or_none()


def insert_events(connection: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert events, skipping ids already stored; returns the ids this call inserted."""
    if not rows:
        return set()
    statement: Insert = (
        dialect_insert(connection, events)
        .on_conflict_do_nothing(index_elements=[events.c.event_id])
        .returning(events.c.event_id)
    )
    return {row[0] for row in connection.execute(statement, list(rows))}


def events_for(connection: Connection, decision_ids: Sequence[str]) -> list[Any]:
    return list(
        connection.execute(
            select(
                events.c.decision_id,
                events.c.offer_id,
                events.c.type,
                events.c.value_units,
                events.c.occurred_at,
            ).where(events.c.decision_id.in_(list(decision_ids)))
        )
    )


def decisions_between(connection: Connection, after: str, before: str, limit: int) -> list[Any]:
    """Up to ``limit`` decisions with ids after ``after`` and before ``before``, in id order,
    which is the order of their times (ids start with their millisecond)."""
    return list(
        connection.execute(
            select(decisions)
            .where(decisions.c.decision_id > after, decisions.c.decision_id < before)
            .order_by(decisions.c.decision_id)
            .limit(limit)
        )
    )


def cell_statistics(connection: Connection, experiment_id: str) -> list[Any]:
    """The experiment's statistics over all its units, per cell and metric."""
    return list(
        connection.execute(
            select(*(c for c in cell_stats.c if c.name != "segment"))
            .where(cell_stats.c.experiment_id == experiment_id, cell_stats.c.segment == "")
            .order_by(cell_stats.c.cell, cell_stats.c.metric)
        )
    )


def segment_statistics(connection: Connection, experiment_id: str) -> list[Any]:
    """The experiment's statistics per metric, segment and cell."""
    return list(
        connection.execute(
            select(cell_stats)
            .where(cell_stats.c.experiment_id == experiment_id, cell_stats.c.segment != "")
            .order_by(cell_stats.c.metric, cell_stats.c.segment, cell_stats.c.cell)
        )
    )


def count_rows(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


# --- API keys ------------------------------------------------------------------------------------


def insert_api_key(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(api_keys.insert(), row)


def role_for_key_hash(connection: Connection, key_hash: str) -> str | None:
    return connection.execute(
        select(api_keys.c.role).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )
    ).scalar_one_or_none()


# --- policy snapshots ----------------------------------------------------------------------------


def latest_snapshot(connection: Connection, policy_name: str) -> Any:
    return connection.execute(
        select(policy_snapshots)
        .where(policy_snapshots.c.policy_name == policy_name)
        .order_by(policy_snapshots.c.version.desc())
        .limit(1)
    ).one_or_none()


def latest_snapshot_version(connection: Connection, policy_name: str) -> int:
    return int(
        connection.execute(
            select(func.coalesce(func.max(policy_snapshots.c.version), 0)).where(
                policy_snapshots.c.policy_name == policy_name
            )
        ).scalar_one()
    )


def insert_snapshot(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(policy_snapshots.insert(), row)


# --- feedback actions ----------------------------------------------------------------------------


def feedback_actions_of(connection: Connection, experiment_id: str) -> list[dict[str, Any]]:
    """The audit trail of an experiment, or of an offer's measure ``offer:<id>``, oldest
    first."""
    rows = connection.execute(
        select(feedback_actions)
        .where(feedback_actions.c.experiment_id == experiment_id)
        .order_by(feedback_actions.c.created_at, feedback_actions.c.action_id)
    )
    return [dict(row._mapping) for row in rows]
