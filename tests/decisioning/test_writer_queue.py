"""SQLite's writers queue on an ``flock`` beside the database, across threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from decisioning.sql.session import make_engine, unit_of_work, writer_queue


def _insert(url: str, value: int) -> None:
    engine = make_engine(url)
    with unit_of_work(engine) as connection:
        connection.execute(text("INSERT INTO marks (value) VALUES (:v)"), {"v": value})
    engine.dispose()


def _count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        count = int(connection.execute(text("SELECT COUNT(*) FROM marks")).scalar_one())
    engine.dispose()
    return count


def _marks_table(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    engine = make_engine(url)
    with unit_of_work(engine) as connection:
        connection.execute(text("CREATE TABLE marks (value INTEGER)"))
    engine.dispose()
    return url


def test_a_writer_in_another_process_waits_for_the_queue_not_for_sqlite(tmp_path: Path) -> None:
    url = _marks_table(tmp_path)
    engine = make_engine(url)
    child = multiprocessing.get_context("spawn").Process(target=_insert, args=(url, 1))
    with writer_queue(engine):  # the queue only: SQLite's own lock is free
        child.start()
        time.sleep(1.0)  # ample for a spawned interpreter to import and try to write
        assert child.is_alive() and _count(url) == 0
    child.join(timeout=30)
    assert child.exitcode == 0 and _count(url) == 1
    engine.dispose()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    url = _marks_table(tmp_path)
    engine = make_engine(url)
    written = threading.Event()

    def second_writer() -> None:
        with unit_of_work(engine) as connection:
            connection.execute(text("INSERT INTO marks (value) VALUES (2)"))
        written.set()

    with writer_queue(engine):
        thread = threading.Thread(target=second_writer)
        thread.start()
        assert not written.wait(0.3)
    thread.join(timeout=10)
    assert written.is_set() and _count(url) == 1
    engine.dispose()


def _enter_queue(url: str, entered: Any) -> None:
    # In the fork's main thread, whose thread-local state is a copy of the parent's, taken
    # inside ``writer_queue``: the parent's open lock file and a depth of 1.
    with writer_queue(make_engine(url)):
        entered.value = 1


def test_a_forked_child_does_not_inherit_the_parents_place(tmp_path: Path) -> None:
    url = _marks_table(tmp_path)
    engine = make_engine(url)
    context = multiprocessing.get_context("fork")
    entered = context.Value("b", 0)
    with writer_queue(engine):
        child = context.Process(target=_enter_queue, args=(url, entered))
        child.start()
        time.sleep(0.5)
        assert child.is_alive() and entered.value == 0
    child.join(timeout=10)
    assert child.exitcode == 0 and entered.value == 1
    engine.dispose()


def test_nested_use_in_one_thread_locks_once(tmp_path: Path) -> None:
    url = _marks_table(tmp_path)
    engine = make_engine(url)
    with writer_queue(engine):
        with writer_queue(engine):
            pass
        # still held after the inner block: another process's writer must wait
        child = multiprocessing.get_context("spawn").Process(target=_insert, args=(url, 3))
        child.start()
        time.sleep(1.0)
        assert _count(url) == 0
    child.join(timeout=30)
    assert _count(url) == 1
    engine.dispose()
