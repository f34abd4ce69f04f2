"""each customer's recent contacts in their row (customers.contact_history), not a contacts table

Revision ID: 0008
Revises: 0007

A decision read its customer's contacts from a table keyed by customer and time and added a row
per offer: an insert at a random place of a b-tree that grew with every contact ever made. The
history in the profile row is read with the profile and rewritten in place, and keeps only what
an admissible policy can count (``ContactHistory``). Upgrading builds each customer's history
from their stored contacts; downgrading rebuilds the contacts from the decision log, which holds
every contact (a decision's offers, on its channel, at its time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter

import sqlalchemy as sa
from alembic import op

from decisioning.contact_policy import ContactHistory
from decisioning.sql.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 1000
contacts = sa.table(
    "contacts",
    sa.column("customer_id", sa.String()),
    sa.column("contacted_at", UTCDateTime()),
    sa.column("decision_id", sa.String()),
    sa.column("offer_id", sa.String()),
    sa.column("channel", sa.String()),
)
decisions = sa.table(
    "decisions",
    sa.column("customer_id", sa.String()),
    sa.column("created_at", UTCDateTime()),
    sa.column("decision_id", sa.String()),
    sa.column("channel", sa.String()),
    sa.column("offers", sa.JSON()),
)
# A customer contacted but never upserted gets a row with an empty profile.
SET_HISTORY = sa.text(
    "INSERT INTO customers (customer_id, attributes, updated_at, contact_history) "
    "VALUES (:customer_id, '{}', :now, :history) "
    "ON CONFLICT (customer_id) DO UPDATE SET contact_history = excluded.contact_history"
).bindparams(sa.bindparam("now", type_=UTCDateTime()))


OLD_COMMENT = "Profile; on PostgreSQL also the row each decision for the customer locks first."
COMMENT = "Profile and recent contacts; each decision for the customer locks its row first."
HISTORY_COMMENT = "contact_policy.ContactHistory as JSON text (never queried inside); null: none"


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(
            sa.Column("contact_history", sa.Text(), nullable=True, comment=HISTORY_COMMENT)
        )
        batch_op.create_table_comment(COMMENT, existing_comment=OLD_COMMENT)
    connection = op.get_bind()
    now = datetime.now(UTC)
    # Read in customer and time order, a customer at a time: a long table never sits in memory.
    query = sa.select(
        contacts.c.customer_id, contacts.c.contacted_at, contacts.c.channel, contacts.c.offer_id
    ).order_by(contacts.c.customer_id, contacts.c.contacted_at)
    histories = []
    for customer_id, made in groupby(
        connection.execute(query.execution_options(yield_per=BATCH)), key=itemgetter(0)
    ):
        history = ContactHistory()
        for _, contacted_at, channel, offer_id in made:
            history = history.with_contacts(channel, [offer_id], contacted_at)
        histories.append({"customer_id": customer_id, "history": history.to_json(), "now": now})
        if len(histories) == BATCH:
            _write(SET_HISTORY, histories)
    _write(SET_HISTORY, histories)
    op.drop_table("contacts")


def downgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("contacted_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "contacted_at", "decision_id", "offer_id", name=op.f("pk_contacts")
        ),
        sqlite_with_rowid=False,
    )
    connection = op.get_bind()
    query = sa.select(
        decisions.c.customer_id,
        decisions.c.created_at,
        decisions.c.decision_id,
        decisions.c.channel,
        decisions.c.offers,
    )
    rows = []
    for customer_id, created_at, decision_id, channel, offers in connection.execute(
        query.execution_options(yield_per=BATCH)
    ):
        for shown in offers:
            rows.append(
                {
                    "customer_id": customer_id,
                    "contacted_at": created_at,
                    "decision_id": decision_id,
                    "offer_id": shown["offer_id"],
                    "channel": channel,
                }
            )
        if len(rows) >= BATCH:
            _write(sa.insert(contacts), rows)
    _write(sa.insert(contacts), rows)
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("contact_history")
        batch_op.create_table_comment(OLD_COMMENT, existing_comment=COMMENT)


def _write(statement: sa.Executable, rows: list[dict[str, object]]) -> None:
    """Run ``statement`` for the rows gathered, then empty the list for the next batch."""
    if rows:
        op.get_bind().execute(statement, rows)
        rows.clear()
