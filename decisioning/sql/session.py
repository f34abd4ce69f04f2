"""Database engines and the unit of work.

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``: it takes the write
lock up front, so concurrent processes queue on ``busy_timeout`` instead of failing when a reader
upgrades to a writer. PostgreSQL runs at READ COMMITTED; decisions lock their customer's row first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000
WRITES = "decisioning.writes"  # connection.info flag: this transaction will write


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url`` with this project's connection settings."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            json_serializer=_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            # Writers take the write lock up front; readers begin deferred and, in WAL mode,
            # never wait for a writer (nor deadlock on one held by their own thread).
            writes = connection.info.get(WRITES, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

        return engine
    return create_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=3600,
    )


@contextmanager
def unit_of_work(engine: Engine, *, durable: bool = False) -> Iterator[Connection]:
    """One transaction: commits once at the end, rolls back on any exception.

    ``durable`` makes SQLite sync its log to disk at this commit (``synchronous=FULL``), for what
    must survive a power cut once acknowledged (events); decisions keep the faster ``NORMAL``,
    whose worst case on power loss is the last decisions rolled back together with their
    reservations. PostgreSQL commits durably either way.
    """
    sqlite_durable = durable and engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        connection.info[WRITES] = True
        if sqlite_durable:
            connection.connection.driver_connection.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]
        try:
            with connection.begin():
                yield connection
        finally:
            connection.info.pop(WRITES, None)
            if sqlite_durable:
                connection.connection.driver_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with unit_of_work(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
