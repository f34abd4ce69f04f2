"""The background checkpointer keeps SQLite's write-ahead log bounded under steady writes."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from decisioning.sql.session import WalCheckpointer, make_engine, unit_of_work

PAGE = 4096


def _write_steadily(path: Path, restart_pages: int) -> int:
    """The log file's size after 3,000 back-to-back write transactions with the checkpointer
    running every 10 ms."""
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as connection:
        connection.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT)"))
    checkpointer = WalCheckpointer(engine, interval_seconds=0.01, restart_pages=restart_pages)
    checkpointer.start()
    try:
        for _ in range(3000):
            with unit_of_work(engine) as connection:
                connection.execute(text("INSERT INTO log (body) VALUES (:b)"), {"b": "x" * 3000})
        return os.path.getsize(f"{path}-wal")
    finally:
        checkpointer.stop()
        engine.dispose()


def test_the_log_starts_over_once_it_passes_the_restart_size(tmp_path: Path) -> None:
    # Each transaction appends a page or two; the log restarts after about 200 pages.
    assert _write_steadily(tmp_path / "bounded.db", restart_pages=200) < 1000 * PAGE


def test_without_the_restart_size_the_passive_checkpoints_let_the_log_grow(tmp_path: Path) -> None:
    # The same writes with the automatic checkpoint out of reach: the passive checkpoints copy
    # the log but never catch its end, so it is never started over.
    assert _write_steadily(tmp_path / "unbounded.db", restart_pages=10**9) > 2000 * PAGE
