"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, column, inspect, select, table, text
from sqlalchemy.exc import IntegrityError

from decisioning.contact_policy import ContactHistory, microseconds
from decisioning.domain import DecisionRequest
from decisioning.sql.session import MIGRATIONS, make_engine, migrate, unit_of_work
from decisioning.sql.tables import (
    UTCDateTime,
    budgets,
    cell_stats,
    customers,
    exposures,
    metadata,
)
from tests.conftest import open_engine
from tests.support import configure, contacts_in_log, offer

# The contacts table of revisions 0007 and before (0008 moved contacts into customers' rows).
contacts = table(
    "contacts",
    column("customer_id"),
    column("offer_id"),
    column("channel"),
    column("decision_id"),
    column("contacted_at", UTCDateTime()),
)
INSERT_CONTACT = text(
    "INSERT INTO contacts (customer_id, offer_id, channel, decision_id, contacted_at) "
    "VALUES (:c, :o, :ch, :d, :at)"
)


def downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with unit_of_work(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


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
                INSERT_CONTACT, dict(zip(("c", "o", "ch", "d", "at"), row, strict=True))
            )
    migrate(engine, "0007")
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
                INSERT_CONTACT,
                {"c": "c1", "o": "o1", "ch": "sms", "d": "d1", "at": "2026-01-01 08:00:00"},
            )
    engine.dispose()


def test_contacts_move_into_customers_histories_and_back(database_url: str) -> None:
    """0008 builds each customer's history from their stored contacts (a customer without a
    profile gets an empty one; a contact no policy can count any more goes), and downgrading
    rebuilds the contacts from the decision log."""
    engine = make_engine(database_url)
    migrate(engine, "0007")
    now = datetime.now(UTC)  # the migration drops what is too old to count at its time
    recent = now.replace(tzinfo=None)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (customer_id, attributes, updated_at) "
                "VALUES ('c1', '{\"segment\": \"mass\"}', '2026-01-01 00:00:00')"
            )
        )
        for row in [
            ("c1", "o1", "sms", "d1", recent - timedelta(hours=2)),
            ("c1", "o2", "sms", "d1", recent - timedelta(hours=2)),
            ("c1", "o1", "push", "d2", recent - timedelta(days=3)),
            ("c1", "o3", "sms", "d0", recent - timedelta(days=400)),
            ("c2", "o1", "push", "d3", recent - timedelta(hours=1)),
        ]:
            connection.execute(
                INSERT_CONTACT,
                dict(zip(("c", "o", "ch", "d", "at"), (*row[:4], str(row[4])), strict=True)),
            )
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            select(customers.c.customer_id, customers.c.attributes, customers.c.contact_history)
        ).all()
    stored = {c: (attributes, ContactHistory.from_json(h)) for c, attributes, h in rows}

    def at(delta: timedelta) -> int:
        return microseconds(now - delta)

    assert stored["c1"][0] == {"segment": "mass"}
    assert stored["c1"][1] == ContactHistory(
        {"sms": [at(timedelta(hours=2))] * 2, "push": [at(timedelta(days=3))]},
        {"o1": [at(timedelta(days=3)), at(timedelta(hours=2))], "o2": [at(timedelta(hours=2))]},
    )
    assert stored["c2"] == (
        {},
        ContactHistory({"push": [at(timedelta(hours=1))]}, {"o1": [at(timedelta(hours=1))]}),
    )
    engine.dispose()

    decisions = open_engine(database_url)
    configure(decisions, [offer("loan"), offer("card")])
    for customer in ("c1", "c3"):
        decisions.decide(
            DecisionRequest(customer, "sms", context={"risk_tolerance": "C3"}, limit=2), now=now
        )
    made = contacts_in_log(decisions)
    assert len(made) == 4
    downgrade(decisions.db, "0007")
    with decisions.db.connect() as connection:
        rebuilt = connection.execute(
            select(
                contacts.c.customer_id,
                contacts.c.offer_id,
                contacts.c.channel,
                contacts.c.contacted_at,
            )
        ).all()
    assert "contact_history" not in {
        c["name"] for c in inspect(decisions.db).get_columns("customers")
    }
    assert sorted(rebuilt) == sorted(
        (c.customer_id, c.offer_id, c.channel, c.contacted_at) for c in made
    )
    decisions.db.dispose()
