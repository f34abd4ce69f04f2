"""Database engines and the unit of work.

SQLite runs in WAL mode and every writing transaction starts with ``BEGIN IMMEDIATE``: it takes
the write lock up front, so a reader never fails upgrading to a writer. Writers queue for it on
an ``flock`` first (``SqliteWriters``), not on ``busy_timeout``. PostgreSQL runs at READ
COMMITTED; decisions lock their customer's row first.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000
WRITES = "decisioning.writes"  # connection.info flag: this transaction will write


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteWriters:
    """The queue of one SQLite database's writers, across threads and processes: an exclusive
    ``flock`` on a file beside the database, held from before ``BEGIN IMMEDIATE`` to after the
    commit. Use it as a context manager (reusable, re-entrant within a thread).

    Why: a writer that finds SQLite's lock taken waits in ``busy_timeout``, which polls with
    sleeps of 1, 2, 5, 10, ... 100 ms, so under two workers' steady decisions (each transaction
    holds the lock for a fraction of a millisecond) the losers slept whole milliseconds while
    the lock sat free: measured, 2 workers decided no faster than one, with p99 near 100 ms. A
    process blocked in ``flock`` is woken by the kernel the moment the holder unlocks.

    Each thread opens its own file (``flock`` excludes open files, not processes); a forked
    child starts afresh, as the parent's open files would be shared with it.
    """

    def __init__(self, database: str) -> None:
        self._path = f"{database}.writers.lock"
        self._local = threading.local()
        os.register_at_fork(after_in_child=self._forget_parents_files)

    def _forget_parents_files(self) -> None:
        self._local = threading.local()

    def __enter__(self) -> None:
        local = self._local
        depth = getattr(local, "depth", None)
        if depth is None:
            local.file = open(self._path, "a")  # kept open for the thread's life
            depth = 0
        if depth == 0:
            fcntl.flock(local.file, fcntl.LOCK_EX)
        local.depth = depth + 1

    def __exit__(self, *_exc: object) -> None:
        local = self._local
        local.depth -= 1
        if local.depth == 0:
            fcntl.flock(local.file, fcntl.LOCK_UN)


def _sqlite_file(engine: Engine) -> str | None:
    """The absolute path of ``engine``'s SQLite file: None on PostgreSQL and in memory."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return os.path.abspath(database)


_SQLITE_WRITERS: dict[str, SqliteWriters] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


def writer_queue(engine: Engine) -> AbstractContextManager[None]:
    """What to hold for a writing transaction on ``engine``: SQLite's writer queue (one per
    database file, whatever the number of engines on it), nothing on PostgreSQL or in memory."""
    path = _sqlite_file(engine)
    if path is None:
        return nullcontext()
    with _SQLITE_WRITERS_LOCK:
        writers = _SQLITE_WRITERS.get(path)
        if writers is None:
            writers = _SQLITE_WRITERS[path] = SqliteWriters(path)
        return writers


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
    with writer_queue(engine), engine.connect() as connection:
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


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Whether this process holds the job lock ``name`` on ``engine``'s database, for the block.

    Never waits: a process that does not get the lock skips the job (another one is doing it).
    PostgreSQL: a session advisory lock; SQLite: an ``flock`` on a file beside the database, so
    an embedded learner and ``decisioning learn`` on one file take turns too.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
        )
        with engine.connect() as connection:
            held = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            )
            connection.commit()
            try:
                yield held
            finally:
                if held:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
        return
    database = _sqlite_file(engine)
    if database is None:  # one process owns an in-memory database
        yield True
        return
    with open(f"{database}.{name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """``url`` (PostgreSQL) with its connections in a new schema of their own, dropped with
    everything in it on exit: a benchmark or a test writes its tables there, never beside the
    database's own."""
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in url else "?"
        try:
            yield f"{url}{separator}options=-csearch_path%3D{schema}"
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest Alembic revision (or to ``revision``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with unit_of_work(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class WalCheckpointer:
    """Checkpoints SQLite's write-ahead log from a background thread every ``interval_seconds``.

    SQLite otherwise checkpoints inside whichever commit crosses 1,000 log pages, and that commit
    pays a copy and an fsync of several milliseconds: the long tail of decision latency. While
    this runs, a ``PASSIVE`` checkpoint (which never blocks writers) copies the log into the
    database off the request path. Under steady writes it never reaches the last frame, though,
    and the log only starts over once a checkpoint has copied all of it, so the engine's
    connections keep an automatic checkpoint at ``restart_pages``: the commit that crosses it
    copies the little the passive ones left, and the log starts over (without it, the log file
    grew by 9 pages a decision, past 700 MB in 20,000 decisions, and decisions slowed down).
    That commit also waits for the checkpoint's fsyncs, so the passive checkpoints are
    frequent (every 50 ms), which leaves it little to copy: measured, p99 at 8 connections fell
    from about 14 to about 10 ms against every 200 ms. Still, the commit that restarts the log
    holds its group 10 to 17 ms (counted in the service: about one slow group a restart), so
    the restart's frequency sets the tail: at 50,000 pages (a log of about 200 MB, a restart
    every 7,000 decisions or so) against 10,000, ``bench http`` at 8 connections had a p99 of
    4.7 to 5.5 ms against 9.2 to 12.2 (3 paired runs; runs of 20 s: 5.6 and 7.4 against 11 and
    13), throughput alike, and ``bench decide`` at 50 offers 5,157 against 5,071 decisions per
    CPU second (median of 3). (One slow day's runs had favoured 10,000 pages, 3,011 against
    2,610: a log that starts over soon is written over in place, where a growing one has the
    kernel allocate its pages anew; that did not show again.)
    A commit's checkpoint gives up while a passive one holds the lock, so the log passes the
    restart size by what is written during a passive checkpoint's fsyncs: with fsyncs slowed
    to 50 ms and a bare insert loop, by about 2,000 pages.
    """

    def __init__(
        self, engine: Engine, interval_seconds: float = 0.05, restart_pages: int = 50_000
    ) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._restart_pages = restart_pages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        event.listen(self._engine, "connect", self._rare_autocheckpoint)
        self._engine.dispose()  # pooled connections reconnect with the rarer checkpoint
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        event.remove(self._engine, "connect", self._rare_autocheckpoint)
        self._engine.dispose()

    def _rare_autocheckpoint(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={self._restart_pages:d}")

    def _run(self) -> None:
        pooled = self._engine.raw_connection()
        try:
            while not self._stop.wait(self._interval):
                pooled.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            pooled.close()
