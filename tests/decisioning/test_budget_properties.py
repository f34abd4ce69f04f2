"""Property: over any sequence of decisions and outcome events, no budget goes negative or is
overspent, and what the budgets say they spent is what the decision log charged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from decisioning.domain import ContactPolicy, DecisionRequest, Event
from decisioning.events import record_events
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import budgets
from tests.conftest import open_engine
from tests.support import NOW, budget, charges_in_log, configure, offer

OFFERS = [
    offer("loan", value=900.0, cost=3.0, campaign_id="lending"),
    offer("car", value=700.0, cost=2.0, campaign_id="lending"),
    offer("card", value=300.0, cost=0.5),
    offer("deposit", value=50.0, cost=0.0),
]

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("decide"),
            st.integers(0, 5),  # customer
            st.integers(0, 72),  # hours after NOW
            st.integers(1, 3),  # limit
        ),
        st.tuples(
            st.just("event"),
            st.integers(0, 50),  # which earlier decision
            st.sampled_from(["impression", "click", "accept", "refuse", "convert"]),
            st.integers(0, 3),  # event id (replays collide)
        ),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(
    steps=steps,
    money=st.floats(0, 40),
    count=st.integers(0, 6),
    daily=st.none() | st.floats(0, 10),
    pacing=st.sampled_from(["even", "asap"]),
)
def test_spend_stays_within_budget(
    steps: list[tuple[object, ...]], money: float, count: int, daily: float | None, pacing: str
) -> None:
    with TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{Path(folder) / 'p.db'}")
        configure(
            engine,
            OFFERS,
            [
                budget(
                    "lending-money",
                    "lending",
                    money,
                    scope="campaign",
                    kind="money",
                    daily_limit=daily,
                    pacing=pacing,
                    flight_end=NOW + timedelta(days=3),
                ),
                budget("card-count", "card", count, pacing=pacing),
            ],
            policy=ContactPolicy(refusal_cooldown_days=2),
            campaigns=["lending"],
        )
        decided: list[tuple[str, str, object]] = []
        for step in steps:
            if step[0] == "decide":
                _, customer, hours, limit = step
                at = NOW + timedelta(hours=int(hours))  # type: ignore[arg-type]
                decision = engine.decide(
                    DecisionRequest(
                        f"c-{customer}",
                        "app_banner",
                        context={"risk_tolerance": "C2"},
                        limit=int(limit),
                    ),  # type: ignore[arg-type]
                    now=at,
                )
                decided += [(decision.decision_id, o.offer_id, at) for o in decision.offers]
            elif decided:
                _, index, kind, event_id = step
                decision_id, offer_id, at = decided[int(index) % len(decided)]  # type: ignore[call-overload]
                with unit_of_work(engine.db) as connection:
                    record_events(
                        connection,
                        [Event(f"e-{event_id}-{decision_id}", decision_id, offer_id, kind, at)],  # type: ignore[arg-type]
                        engine.catalog.current().contact_policy,
                        at,  # type: ignore[arg-type]
                    )
            with engine.db.connect() as connection:
                for row in connection.execute(select(budgets)):
                    assert 0 <= row.spent_units <= row.amount_units
                    if row.daily_limit_units is not None:
                        assert row.day_spent_units <= row.daily_limit_units
        with engine.db.connect() as connection:
            spent = {r.budget_id: r.spent_units for r in connection.execute(select(budgets))}
        assert {b: u for b, u in charges_in_log(engine).items()} == {
            b: u for b, u in spent.items() if u
        }
        engine.db.dispose()
