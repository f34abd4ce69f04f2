"""contacts keyed by (customer, time, decision, offer); on SQLite a WITHOUT ROWID table

Revision ID: 0007
Revises: 0006

The separate id and the (customer_id, contacted_at) index go: the primary key leads with the
same columns, so the caps' count reads it as the index was read, and each contact is one
b-tree entry instead of two.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY = ["customer_id", "contacted_at", "decision_id", "offer_id"]


def upgrade() -> None:
    # SQLite rebuilds the table (copying its rows); PostgreSQL alters it in place.
    with op.batch_alter_table(
        "contacts", recreate="auto", table_kwargs={"sqlite_with_rowid": False}
    ) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_customer_id_contacted_at"))
        batch_op.drop_constraint("pk_contacts", type_="primary")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_contacts", KEY)


def downgrade() -> None:
    index = "ix_contacts_customer_id_contacted_at"
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_contacts", "contacts", type_="primary")
        op.execute("ALTER TABLE contacts ADD COLUMN id BIGSERIAL")  # numbers the rows it has
        op.create_primary_key("pk_contacts", "contacts", ["id"])
        op.create_index(index, "contacts", ["customer_id", "contacted_at"])
        return
    with op.batch_alter_table(
        "contacts", recreate="always", table_kwargs={"sqlite_with_rowid": True}
    ) as batch_op:
        batch_op.drop_constraint("pk_contacts", type_="primary")
        # An INTEGER PRIMARY KEY is SQLite's rowid: the copied rows get their numbers.
        batch_op.add_column(sa.Column("id", sa.Integer(), nullable=False))
        batch_op.create_primary_key("pk_contacts", ["id"])
        batch_op.create_index(index, ["customer_id", "contacted_at"])
