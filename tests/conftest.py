"""Shared fixtures: an engine on a fresh SQLite file, and on a fresh PostgreSQL schema when
``DECISIONING_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it; elsewhere those tests skip)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from decisioning.engine import DecisionEngine
from decisioning.settings import Settings
from decisioning.sql.session import scratch_schema

POSTGRES_URL = os.environ.get("DECISIONING_TEST_POSTGRES_URL")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def postgres_server_url() -> str:
    """The PostgreSQL database's own URL, for a test that makes its schemas itself."""
    if not POSTGRES_URL:
        pytest.skip("DECISIONING_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A URL whose connections use a schema of their own, dropped afterwards."""
    with scratch_schema(postgres_server_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def open_engine(url: str, **overrides: object) -> DecisionEngine:
    values: dict[str, object] = {"database_url": url, "seed": 0, "refresh_seconds": 0.05}
    settings = Settings(**{**values, **overrides})  # type: ignore[arg-type]
    return DecisionEngine.open(settings)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[DecisionEngine]:
    decision_engine = open_engine(sqlite_url)
    yield decision_engine
    decision_engine.db.dispose()
