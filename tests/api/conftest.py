"""Fixtures of the API tests: an app on a fresh SQLite file with one key per role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.security import create_key
from decisioning.engine import DecisionEngine
from decisioning.sql.tables import budgets, decisions, events, offers
from tests.conftest import open_engine
from tests.support import configure, offer

CONTEXT = {"age": 40, "risk_tolerance": "C3", "lifecycle": "mature"}


class Api:
    """A test client with one key per role."""

    def __init__(self, engine: DecisionEngine) -> None:
        self.engine = engine
        self.client = TestClient(create_app(engine.settings, engine))
        self.keys = {
            role: create_key(engine.db, role)
            for role in ("channel", "marketer", "analyst", "admin")
        }

    def call(self, method: str, path: str, role: str | None = "channel", **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if role is not None:
            headers["Authorization"] = f"Bearer {self.keys[role]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def decide(self, **body: Any) -> Any:
        return self.call(
            "POST",
            "/v1/decisions",
            json={"customer_id": "c-1", "channel": "sms", "context": CONTEXT, **body},
        )

    def counts(self) -> dict[str, int]:
        with self.engine.db.connect() as connection:
            return {
                t.name: int(connection.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (offers, budgets, decisions, events)
            }


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    engine = open_engine(sqlite_url)
    configure(engine, [offer("loan", value=500.0), offer("card", value=100.0)])
    yield Api(engine)
    engine.db.dispose()
