"""placements' default policies, feedback actions' audit log, customer outcomes, bandit weights

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import decisioning.sql.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("placement", sa.String(length=64), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
            comment='{"policy": ...}: its default policy',
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("placement", name=op.f("pk_placements")),
    )
    op.create_table(
        "feedback_actions",
        sa.Column("action_id", sa.String(length=32), nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="promote"),
        sa.Column(
            "status", sa.String(length=16), nullable=False, comment="pending, applied or rejected"
        ),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
            comment="the change and its statistics",
        ),
        sa.Column("created_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_feedback_actions")),
        comment="Audit log: every change experiment results made, or proposed, to the "
        "configuration.",
    )
    with op.batch_alter_table("feedback_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_actions_experiment_id"), ["experiment_id"], unique=False
        )

    op.create_table(
        "allocations",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
            comment='{"period": k, "weights": {cell: w}, "since": ...}: a bandit\'s current '
            "weights",
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column(
            "decision_id",
            existing_type=sa.String(length=32),
            nullable=True,
            comment="null for a customer outcome (no decision)",
        )
        batch_op.alter_column("offer_id", existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(
            sa.Column(
                "product",
                sa.String(length=64),
                nullable=True,
                comment="a customer outcome's product",
            )
        )
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exposures_unit_id"), ["unit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exposures_unit_id"))
    op.execute("DELETE FROM events WHERE decision_id IS NULL")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("product")
        batch_op.alter_column("offer_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column(
            "decision_id", existing_type=sa.String(length=32), nullable=False, comment=None
        )
    with op.batch_alter_table("feedback_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_actions_experiment_id"))
    op.drop_table("allocations")
    op.drop_table("feedback_actions")
    op.drop_table("placements")
