"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import decisioning.sql.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "budgets",
        sa.Column("budget_id", sa.String(length=64), nullable=False),
        sa.Column(
            "document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("amount_units", sa.BigInteger(), nullable=False),
        sa.Column("daily_limit_units", sa.BigInteger(), nullable=True),
        sa.Column("spent_units", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("day_spent_units", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("budget_id", name=op.f("pk_budgets")),
    )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_version")),
        comment="One row; bumped with every catalogue change so workers refresh their cache.",
    )
    op.create_table(
        "contact_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_policy")),
    )
    op.create_table(
        "contacts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column(
            "contacted_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contacts_customer_id_contacted_at"),
            ["customer_id", "contacted_at"],
            unique=False,
        )

    op.create_table(
        "cooldowns",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("until", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "offer_id", name=op.f("pk_cooldowns")),
    )
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customers")),
        comment="Profile; on PostgreSQL also the row each decision for the customer locks first.",
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("placement", sa.String(length=64), nullable=False),
        sa.Column("policy_name", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=True),
        sa.Column("cell", sa.String(length=64), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column(
            "context", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "candidates", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "offers", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_created_at"), ["created_at"], unique=False)

    op.create_table(
        "offers",
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column(
            "document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("offer_id", name=op.f("pk_offers")),
    )
    op.create_table(
        "policy_snapshots",
        sa.Column("policy_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column(
            "learned_until", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("learned_decision_id", sa.String(length=32), nullable=False),
        sa.Column("rounds", sa.BigInteger(), nullable=False),
        sa.Column("created_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("policy_name", "version", name=op.f("pk_policy_snapshots")),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("value_units", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.decision_id"], name=op.f("fk_events_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_decision_id"), ["decision_id"], unique=False)

    op.bulk_insert(
        sa.table(
            "config_version", sa.column("id", sa.Integer), sa.column("version", sa.BigInteger)
        ),
        [{"id": 1, "version": 0}],
    )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_decision_id"))

    op.drop_table("events")
    op.drop_table("policy_snapshots")
    op.drop_table("offers")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_created_at"))

    op.drop_table("decisions")
    op.drop_table("customers")
    op.drop_table("cooldowns")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_customer_id_contacted_at"))

    op.drop_table("contacts")
    op.drop_table("contact_policy")
    op.drop_table("config_version")
    op.drop_table("campaigns")
    op.drop_table("budgets")
    op.drop_table("api_keys")
