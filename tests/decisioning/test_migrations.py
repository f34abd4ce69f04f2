"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from decisioning.sql.session import make_engine, migrate
from decisioning.sql.tables import budgets, cell_stats, contacts, exposures, metadata


def test_migrations_match_the_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # upgrading a current schema is a no-op
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()


def test_upgrading_keeps_the_statistics_and_budgets_already_stored(database_url: str) -> None:
    """Rows written under revision 0003 survive 0004 (segments) and 0005 (prices) unchanged:
    a cell's statistics become its all-units row, an exposure has no segments, a budget no
    price yet."""
    engine = make_engine(database_url)
    migrate(engine, "0003")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO cell_stats (experiment_id, cell, metric, n, sum, sum_squares, "
                "sum_x, sum_x2, sum_xy) VALUES ('e', 'a', 'conversion', 3, 1, 1, 0, 0, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO exposures (experiment_id, unit_id, cell, first_exposed_at, "
                "covariate, conversion, value, accepts, clicks, contacts) "
                "VALUES ('e', 'u', 'a', '2026-01-01 00:00:00', 0, 1, 0, 0, 0, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO budgets (budget_id, document, amount_units, spent_units, day, "
                "day_spent_units, updated_at) "
                "VALUES ('b', '{}', 100, 40, '', 0, '2026-01-01 00:00:00')"
            )
        )
    migrate(engine)
    with engine.connect() as connection:
        [statistics] = connection.execute(select(cell_stats)).mappings()
        assert (statistics["segment"], statistics["n"], statistics["sum"]) == ("", 3, 1.0)
        assert connection.execute(select(exposures.c.segments)).scalar_one() == []
        budget = connection.execute(select(budgets.c.spent_units, budgets.c.price)).one()
        assert tuple(budget) == (40, None)
    engine.dispose()


def test_contacts_keep_their_rows_when_clustered_by_customer(database_url: str) -> None:
    """0007 keys contacts by (customer, time, decision, offer), on SQLite without a rowid:
    the contacts stored before it are all there after it, and a contact is stored once."""
    engine = make_engine(database_url)
    migrate(engine, "0006")
    stored = [
        ("c1", "o1", "sms", "d1", "2026-01-01 08:00:00"),
        ("c1", "o2", "sms", "d1", "2026-01-01 08:00:00"),
        ("c2", "o1", "push", "d2", "2026-01-02 09:30:00"),
    ]
    with engine.begin() as connection:
        for row in stored:
            connection.execute(
                text(
                    "INSERT INTO contacts (customer_id, offer_id, channel, decision_id, "
                    "contacted_at) VALUES (:c, :o, :ch, :d, :at)"
                ),
                dict(zip(("c", "o", "ch", "d", "at"), row, strict=True)),
            )
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                contacts.c.customer_id,
                contacts.c.offer_id,
                contacts.c.channel,
                contacts.c.decision_id,
                contacts.c.contacted_at,
            ).order_by(contacts.c.customer_id, contacts.c.offer_id)
        ).all()
        assert [(*r[:4], r[4].strftime("%Y-%m-%d %H:%M:%S")) for r in rows] == stored
        if engine.dialect.name == "sqlite":
            schema = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'contacts'")
            ).scalar_one()
            assert schema.rstrip().endswith("WITHOUT ROWID")
        with pytest.raises(IntegrityError):  # one contact per offer and decision
            connection.execute(
                text(
                    "INSERT INTO contacts (customer_id, offer_id, channel, decision_id, "
                    "contacted_at) VALUES ('c1', 'o1', 'sms', 'd1', '2026-01-01 08:00:00')"
                )
            )
    engine.dispose()
