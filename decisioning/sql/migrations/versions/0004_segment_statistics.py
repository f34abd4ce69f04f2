"""uplift by segment: each exposure's segments, and per-segment sufficient statistics

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "segments",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=False,
                server_default="[]",
                comment='its segments at first exposure, e.g. ["lifecycle=mature"]',
            )
        )
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.alter_column("segments", server_default=None)
    with op.batch_alter_table("cell_stats", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "segment",
                sa.String(length=129),
                nullable=False,
                server_default="",
                comment="'' for all units, else attribute=value: the units of one segment",
            )
        )
        batch_op.drop_constraint("pk_cell_stats", type_="primary")
        batch_op.create_primary_key("pk_cell_stats", ["experiment_id", "cell", "metric", "segment"])


def downgrade() -> None:
    with op.batch_alter_table("cell_stats", schema=None) as batch_op:
        batch_op.execute("DELETE FROM cell_stats WHERE segment <> ''")
    with op.batch_alter_table("cell_stats", schema=None) as batch_op:
        batch_op.drop_constraint("pk_cell_stats", type_="primary")
        batch_op.create_primary_key("pk_cell_stats", ["experiment_id", "cell", "metric"])
        batch_op.drop_column("segment")
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.drop_column("segments")
