"""experiments

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import decisioning.sql.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cell_stats",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("sum_squares", sa.Float(), nullable=False),
        sa.Column("sum_x", sa.Float(), nullable=False),
        sa.Column("sum_x2", sa.Float(), nullable=False),
        sa.Column("sum_xy", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "cell", "metric", name=op.f("pk_cell_stats")),
        comment="Sufficient statistics per cell and metric (x: the pre-exposure covariate).",
    )
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column(
            "document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_experiments")),
    )
    op.create_table(
        "exposures",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.String(length=64), nullable=False),
        sa.Column(
            "first_exposed_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("covariate", sa.Float(), nullable=False, comment="pre-exposure value, for CUPED"),
        sa.Column("conversion", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("accepts", sa.Float(), nullable=False),
        sa.Column("clicks", sa.Float(), nullable=False),
        sa.Column("contacts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "unit_id", name=op.f("pk_exposures")),
        comment="One row per unit and experiment: its cell, first exposure and metric values.",
    )
    op.create_table(
        "holdouts",
        sa.Column(
            "holdout_id", sa.String(length=64), nullable=False, comment="'bank' or a placement"
        ),
        sa.Column(
            "document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", decisioning.sql.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holdout_id", name=op.f("pk_holdouts")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "memberships",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
                comment="[[experiment_id, cell], ...]: every layer, holdouts",
            )
        )

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_customer_id_occurred_at"),
            ["customer_id", "occurred_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_customer_id_occurred_at"))

    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("memberships")

    op.drop_table("holdouts")
    op.drop_table("exposures")
    op.drop_table("experiments")
    op.drop_table("cell_stats")
