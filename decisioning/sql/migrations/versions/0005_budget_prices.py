"""dual-price pacing: each budget's price and the start of its current step

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import decisioning.sql.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "price",
                sa.Float(),
                nullable=True,
                comment="dual price per unit of charge (dual pacing); null: unset",
            )
        )
        batch_op.add_column(
            sa.Column(
                "price_updated_at",
                decisioning.sql.tables.UTCDateTime(timezone=True),
                nullable=True,
                comment="start of the price's current step",
            )
        )
        batch_op.add_column(
            sa.Column(
                "price_spent_units",
                sa.BigInteger(),
                nullable=True,
                comment="spend at the start of that step",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.drop_column("price_spent_units")
        batch_op.drop_column("price_updated_at")
        batch_op.drop_column("price")
