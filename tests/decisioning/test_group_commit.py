"""engine.group(): on SQLite the decisions made inside commit together, each a savepoint of one
transaction; caps and budgets bind within the group as between transactions; on PostgreSQL
each decision keeps its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from decisioning.domain import ChannelCaps, ContactPolicy, DecisionRequest
from decisioning.engine import DecisionEngine
from decisioning.sql.hot_path import HotPath
from decisioning.sql.tables import to_units
from tests.conftest import open_engine
from tests.support import (
    NOW,
    budget,
    charges_in_log,
    configure,
    logged_decisions,
    offer,
    recorded_contacts,
    spent_units,
)

ADULT = {"age": 40, "risk_tolerance": "C3", "lifecycle": "mature", "segment": "mass"}


def _request(customer: str, limit: int = 1) -> DecisionRequest:
    return DecisionRequest(customer, "app_banner", context=ADULT, limit=limit)


@pytest.fixture
def card_engine(database_url: str) -> Any:
    """One offer on a count budget of 3, at most 2 contacts per customer and day."""
    engine = open_engine(database_url)
    configure(
        engine,
        offers=[offer("card")],
        budget_list=[budget("card-count", "card", 3)],
        policy=ContactPolicy(channel_caps={"app_banner": ChannelCaps(per_day=2)}),
    )
    yield engine
    engine.db.dispose()


def test_the_group_commits_when_it_ends_on_sqlite_and_per_decision_on_postgres(
    card_engine: DecisionEngine,
) -> None:
    sqlite = card_engine.db.dialect.name == "sqlite"
    with card_engine.group():
        for i in range(3):
            card_engine.decide(_request(f"c{i}"), now=NOW)
            # What another connection sees meanwhile: nothing before the group's commit.
            assert len(logged_decisions(card_engine)) == (0 if sqlite else i + 1)
    assert len(logged_decisions(card_engine)) == 3


def test_caps_and_budgets_bind_within_a_group(card_engine: DecisionEngine) -> None:
    with card_engine.group():
        shown = [
            len(card_engine.decide(_request(customer), now=NOW).offers)
            for customer in ("a", "a", "a", "b", "b")
        ]
    # a's cap of 2 a day binds at its third decision; the budget of 3 at b's second.
    assert shown == [1, 1, 0, 1, 0]
    log = logged_decisions(card_engine)
    assert [row.candidates["card"] for row in log if not row.offers] == [
        "CHANNEL_DAILY_CAP",
        "BUDGET_EXHAUSTED",
    ]
    assert spent_units(card_engine) == {"card-count": to_units(3)} == charges_in_log(card_engine)
    assert len(recorded_contacts(card_engine)) == 3


def test_a_decision_that_fails_in_a_group_rolls_back_alone(
    card_engine: DecisionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_decision = HotPath.log_decision

    def failing_for_bad(hot: HotPath, row: dict[str, Any], offer_ids: Sequence[str]) -> None:
        log_decision(hot, row, offer_ids)
        if row["customer_id"] == "bad":  # after its reservation, its contact and its log row
            raise RuntimeError("the decision failed after writing")

    monkeypatch.setattr(HotPath, "log_decision", failing_for_bad)
    with card_engine.group():
        card_engine.decide(_request("first"), now=NOW)
        with pytest.raises(RuntimeError):
            card_engine.decide(_request("bad"), now=NOW)
        card_engine.decide(_request("last"), now=NOW)
    log = logged_decisions(card_engine)
    assert [row.customer_id for row in log] == ["first", "last"]
    assert spent_units(card_engine) == {"card-count": to_units(2)} == charges_in_log(card_engine)
    assert [c for c, _ in recorded_contacts(card_engine)] == ["first", "last"]


def test_a_group_that_fails_loses_its_decisions_and_their_spend(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    configure(engine, offers=[offer("card")], budget_list=[budget("card-count", "card", 1)])
    with pytest.raises(OSError), engine.group():
        assert len(engine.decide(_request("a"), now=NOW).offers) == 1
        raise OSError("the commit failed")
    assert logged_decisions(engine) == [] and recorded_contacts(engine) == []
    assert spent_units(engine) == {"card-count": 0}
    # The budget's cached spend never counted the lost reservation: the offer is still made.
    assert len(engine.decide(_request("b"), now=NOW).offers) == 1
    engine.db.dispose()


def test_groups_do_not_nest(sqlite_url: str) -> None:
    """A group opened inside a group joins it: one commit, at the outer group's end."""
    engine = open_engine(sqlite_url)
    configure(engine, offers=[offer("card")])
    with engine.group():
        with engine.group():
            engine.decide(_request("a"), now=NOW)
        assert logged_decisions(engine) == []
    assert len(logged_decisions(engine)) == 1
    engine.db.dispose()


def test_the_groups_reservations_reach_the_budget_cache_once_it_has_committed(
    sqlite_url: str,
) -> None:
    engine = open_engine(sqlite_url, refresh_seconds=60)  # cached states do not age meanwhile
    configure(engine, offers=[offer("card")], budget_list=[budget("card-count", "card", 5)])
    version = engine.catalog.current().version

    def cached() -> int:
        def no_read(_ids: list[str]) -> dict[str, Any]:
            raise AssertionError("the budget's state should be cached")

        return engine.budget_states.states({"card-count"}, version, no_read)[
            "card-count"
        ].spent_units

    with engine.group():
        for customer in ("a", "b"):
            engine.decide(_request(customer), now=NOW)
        assert cached() == 0  # read before the first reservation, nothing added before commit
    assert cached() == to_units(2) == spent_units(engine)["card-count"]
    engine.db.dispose()
