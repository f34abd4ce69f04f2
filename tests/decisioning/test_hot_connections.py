"""The decision path keeps one driver connection per thread and replaces a broken one."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import text

from decisioning.domain import DecisionRequest
from decisioning.engine import DecisionEngine
from tests.conftest import open_engine
from tests.support import NOW, configure, offer

ADULT = {"age": 40, "risk_tolerance": "C3", "lifecycle": "mature", "segment": "mass"}


def _decide(engine: DecisionEngine, customer: str) -> int:
    request = DecisionRequest(customer, "app_banner", context=ADULT, limit=1)
    return len(engine.decide(request, now=NOW).offers)


def _backend_pid(engine: DecisionEngine) -> int:
    with engine.hot.transaction() as hot:
        return int(hot._run("SELECT pg_backend_pid()").fetchone()[0])


def test_each_thread_keeps_its_own_connection(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    configure(engine, offers=[offer("card")])
    seen: dict[str, object] = {}

    def decide_twice(name: str) -> None:
        _decide(engine, f"{name}-1")
        first = engine.hot._connection()
        _decide(engine, f"{name}-2")
        assert engine.hot._connection() is first
        seen[name] = first

    threads = [threading.Thread(target=decide_twice, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 2 and seen["a"] is not seen["b"]
    engine.db.dispose()


def test_a_connection_the_server_dropped_is_replaced(postgres_url: str) -> None:
    engine = open_engine(postgres_url)
    configure(engine, offers=[offer("card")])
    assert _decide(engine, "c-1") == 1
    dropped = _backend_pid(engine)
    with engine.db.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        admin.commit()
    with pytest.raises(psycopg.OperationalError):
        _decide(engine, "c-2")
    assert _decide(engine, "c-3") == 1  # a new connection, on the next decision
    assert _backend_pid(engine) != dropped
    engine.db.dispose()


def test_only_the_decision_connections_commit_asynchronously(postgres_url: str) -> None:
    engine = open_engine(postgres_url)
    configure(engine, offers=[offer("card")])
    assert _decide(engine, "c-1") == 1
    with engine.hot.transaction() as hot:
        assert hot._run("SHOW synchronous_commit").fetchone()[0] == "off"
    with engine.db.connect() as connection:  # events, catalogue: durable at commit
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
    engine.db.dispose()
