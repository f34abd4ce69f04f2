"""The background checkpointer copies SQLite's write-ahead log into the database off the
request path, and the engine's commits start the log over once it reaches the restart size."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from decisioning.sql.session import WalCheckpointer, make_engine, unit_of_work

PAGE = 4096
BODY = "x" * 3000  # a row a page: each transaction appends two or three log pages


@contextmanager
def _checkpointed(path: Path, interval_seconds: float, restart_pages: int) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as connection:
        connection.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT)"))
    checkpointer = WalCheckpointer(
        engine, interval_seconds=interval_seconds, restart_pages=restart_pages
    )
    checkpointer.start()
    try:
        yield engine
    finally:
        checkpointer.stop()
        engine.dispose()


def _write(engine: Engine, transactions: int) -> None:
    for _ in range(transactions):
        with unit_of_work(engine) as connection:
            connection.execute(text("INSERT INTO log (body) VALUES (:b)"), {"b": BODY})


def test_a_commit_past_the_restart_size_starts_the_log_over(tmp_path: Path) -> None:
    # The background rounds never come (an hour apart): only the commits checkpoint, and with
    # nobody else holding the checkpoint lock each one that passes 200 pages catches the end.
    path = tmp_path / "restarting.db"
    with _checkpointed(path, interval_seconds=3600, restart_pages=200) as engine:
        _write(engine, 1000)
        assert os.path.getsize(f"{path}-wal") < 250 * PAGE


def test_the_background_rounds_copy_the_log_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "copied.db"
    with _checkpointed(path, interval_seconds=0.01, restart_pages=10**9) as engine:
        _write(engine, 100)
        deadline = time.monotonic() + 30
        while os.path.getsize(path) < 100 * PAGE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.getsize(path) >= 100 * PAGE  # the rows reached the database file


def test_without_the_restart_size_the_passive_checkpoints_let_the_log_grow(tmp_path: Path) -> None:
    # Steady writes with the automatic checkpoint out of reach: the passive checkpoints copy
    # the log but never catch its end (a commit lands during their fsync), so it never starts
    # over. A slower disk only widens the gap.
    path = tmp_path / "unbounded.db"
    with _checkpointed(path, interval_seconds=0.01, restart_pages=10**9) as engine:
        _write(engine, 3000)
        assert os.path.getsize(f"{path}-wal") > 2000 * PAGE
