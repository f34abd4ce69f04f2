"""The schema, as SQLAlchemy Core tables (Alembic migrations are written against it).

Money and counts are stored as integers in units of 1/10,000 (``to_units``) so that sums are
exact in SQLite and PostgreSQL alike. Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

UNITS_PER_CURRENCY_UNIT = 10_000


def to_units(amount: float) -> int:
    """Currency or count -> exact integer units of 1/10,000."""
    return round(amount * UNITS_PER_CURRENCY_UNIT)


def from_units(units: int) -> float:
    return units / UNITS_PER_CURRENCY_UNIT


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Document: Any = JSON().with_variant(JSONB(), "postgresql")
ID = 64
SEGMENT = 2 * ID + 1  # attribute=value

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

config_version = Table(
    "config_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    comment="One row; bumped with every catalogue change so workers refresh their cache.",
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

offers = Table(
    "offers",
    metadata,
    Column("offer_id", String(ID), primary_key=True),
    Column("document", Document, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    Column("budget_id", String(ID), primary_key=True),
    Column("document", Document, nullable=False),
    Column("amount_units", BigInteger, nullable=False),
    Column("daily_limit_units", BigInteger),
    Column("spent_units", BigInteger, nullable=False, default=0),
    Column("day", String(10), nullable=False, default=""),
    Column("day_spent_units", BigInteger, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("price", Float, comment="dual price per unit of charge (dual pacing); null: unset"),
    Column("price_updated_at", UTCDateTime, comment="start of the price's current step"),
    Column("price_spent_units", BigInteger, comment="spend at the start of that step"),
)

contact_policy = Table(
    "contact_policy",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("document", Document, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("attributes", Document, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column(
        "contact_history",
        Text,
        comment="contact_policy.ContactHistory as JSON text (never queried inside); null: none",
    ),
    comment="Profile and recent contacts; each decision for the customer locks its row first.",
)

cooldowns = Table(
    "cooldowns",
    metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("offer_id", String(ID), primary_key=True),
    Column("until", UTCDateTime, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(32), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("customer_id", String(ID), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("placement", String(ID), nullable=False),
    Column("policy_name", String(ID), nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("experiment_id", String(ID)),
    Column("cell", String(ID)),
    Column("memberships", Document, comment="[[experiment_id, cell], ...]: every layer, holdouts"),
    Column("latency_ms", Float, nullable=False),
    Column("context", Document, nullable=False),
    # offer id -> its exclusion reason, or [score, priority] when it was eligible
    Column("candidates", Document, nullable=False),
    Column("offers", Document, nullable=False),
    # No index on created_at: the id starts with the decision's millisecond, so the primary
    # key orders the log by time (engine.time_ordered_id), one index fewer to write per decision.
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column(
        "decision_id",
        String(32),
        ForeignKey("decisions.decision_id"),
        comment="null for a customer outcome (no decision)",
    ),
    Column("offer_id", String(ID)),
    Column("customer_id", String(ID), nullable=False),
    Column("product", String(ID), comment="a customer outcome's product"),
    Column("type", String(16), nullable=False),
    Column("value_units", BigInteger, nullable=False, default=0),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index(None, "decision_id"),
    Index(None, "customer_id", "occurred_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

policy_snapshots = Table(
    "policy_snapshots",
    metadata,
    Column("policy_name", String(ID), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", LargeBinary, nullable=False),
    Column("learned_until", UTCDateTime, nullable=False),
    Column("learned_decision_id", String(32), nullable=False),
    Column("rounds", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", String(ID), primary_key=True),
    Column("document", Document, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

holdouts = Table(
    "holdouts",
    metadata,
    Column("holdout_id", String(ID), primary_key=True, comment="'bank' or a placement"),
    Column("document", Document, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

exposures = Table(
    "exposures",
    metadata,
    Column("experiment_id", String(ID), primary_key=True),
    Column("unit_id", String(ID), primary_key=True),
    Column("cell", String(ID), nullable=False),
    Column("first_exposed_at", UTCDateTime, nullable=False),
    Column("covariate", Float, nullable=False, comment="pre-exposure value, for CUPED"),
    Column("conversion", Float, nullable=False, default=0.0),
    Column("value", Float, nullable=False, default=0.0),
    Column("accepts", Float, nullable=False, default=0.0),
    Column("clicks", Float, nullable=False, default=0.0),
    Column("contacts", Float, nullable=False, default=0.0),
    Column(
        "segments",
        Document,
        nullable=False,
        default=list,
        comment='its segments at first exposure, e.g. ["lifecycle=mature"]',
    ),
    Index(None, "unit_id"),
    comment="One row per unit and experiment: its cell, first exposure and metric values.",
)

cell_stats = Table(
    "cell_stats",
    metadata,
    Column("experiment_id", String(ID), primary_key=True),
    Column("cell", String(ID), primary_key=True),
    Column("metric", String(16), primary_key=True),
    Column(
        "segment",
        String(SEGMENT),
        primary_key=True,
        default="",
        server_default="",
        comment="'' for all units, else attribute=value: the units of one segment",
    ),
    Column("n", BigInteger, nullable=False, default=0),
    Column("sum", Float, nullable=False, default=0.0),
    Column("sum_squares", Float, nullable=False, default=0.0),
    Column("sum_x", Float, nullable=False, default=0.0),
    Column("sum_x2", Float, nullable=False, default=0.0),
    Column("sum_xy", Float, nullable=False, default=0.0),
    comment="Sufficient statistics per cell and metric (x: the pre-exposure covariate).",
)

placements = Table(
    "placements",
    metadata,
    Column("placement", String(ID), primary_key=True),
    Column("document", Document, nullable=False, comment='{"policy": ...}: its default policy'),
    Column("updated_at", UTCDateTime, nullable=False),
)

feedback_actions = Table(
    "feedback_actions",
    metadata,
    Column("action_id", String(32), primary_key=True),
    Column("experiment_id", String(ID), nullable=False, index=True),
    Column("kind", String(16), nullable=False, comment="promote"),
    Column("status", String(16), nullable=False, comment="pending, applied or rejected"),
    Column("details", Document, nullable=False, comment="the change and its statistics"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", String(ID)),
    comment="Audit log: every change experiment results made, or proposed, to the configuration.",
)

allocations = Table(
    "allocations",
    metadata,
    Column("experiment_id", String(ID), primary_key=True),
    Column(
        "document",
        Document,
        nullable=False,
        comment='{"period": k, "weights": {cell: w}, "since": ...}: a bandit\'s current weights',
    ),
    Column("updated_at", UTCDateTime, nullable=False),
)
