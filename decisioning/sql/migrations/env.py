"""Alembic environment: runs on the connection handed over by ``decisioning.sql.session.migrate``
or, from the alembic command line, on ``DECISIONING_DATABASE_URL``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from decisioning.settings import Settings
from decisioning.sql.session import make_engine
from decisioning.sql.tables import metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    with make_engine(Settings().url).begin() as own_connection:
        run(own_connection)
