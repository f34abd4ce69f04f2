"""The decision pipeline end to end, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bandits import make_policy
from bandits.base import mix_uniform
from decisioning.domain import ChannelCaps, ContactPolicy, DecisionRequest, Event, QuietHours
from decisioning.engine import DecisionEngine
from decisioning.errors import InvalidInput
from decisioning.events import record_events
from decisioning.sql.session import unit_of_work
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


@pytest.fixture
def db_engine(database_url: str) -> DecisionEngine:
    engine = open_engine(database_url)
    yield engine
    engine.db.dispose()


def decide(
    engine: DecisionEngine,
    customer: str = "c-1",
    *,
    channel: str = "app_banner",
    limit: int = 1,
    at: datetime = NOW,
    **context: object,
):
    return engine.decide(
        DecisionRequest(customer, channel, context={**ADULT, **context}, limit=limit), now=at
    )


def refuse(engine: DecisionEngine, decision, offer_id: str, event_id: str, at: datetime) -> None:
    with unit_of_work(engine.db) as connection:
        record_events(
            connection,
            [Event(event_id, decision.decision_id, offer_id, "refuse", at)],
            engine.catalog.current().contact_policy,
            at,
        )


def test_every_candidate_is_logged_with_its_reason(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [
            offer("fine", value=500.0),
            offer("risky", risk_level="R5"),
            offer("held", product="current_account"),
            offer("for-new", lifecycle_stages=("new",)),
            offer(
                "payroll-only",
                eligibility={
                    "attr": "group",
                    "op": "==",
                    "value": "payroll",
                    "reason": "NOT_PAYROLL",
                },
            ),
            offer("expired", valid_until=NOW - timedelta(days=1)),
            offer("future", valid_from=NOW + timedelta(days=1)),
            offer("email-only", channels=("email",)),
        ],
    )
    decision = decide(db_engine, products=["current_account"])
    reasons = {c.offer_id: c.reason for c in decision.candidates}
    assert reasons == {
        "fine": None,
        "risky": "UNSUITABLE_RISK",
        "held": "ALREADY_HOLDS_PRODUCT",
        "for-new": "LIFECYCLE_MISMATCH",
        "payroll-only": "NOT_PAYROLL",
        "expired": "EXPIRED",
        "future": "NOT_YET_VALID",
    }
    assert [o.offer_id for o in decision.offers] == ["fine"]
    [row] = logged_decisions(db_engine)
    assert row.decision_id == decision.decision_id
    assert {o: v if isinstance(v, str) else None for o, v in row.candidates.items()} == reasons
    # In catalogue order (by offer id), scored and excluded offers alike. (The log keeps them as
    # a JSON object, whose keys PostgreSQL's JSONB stores in an order of its own.)
    assert [c.offer_id for c in decision.candidates] == sorted(reasons)
    assert row.offers[0]["propensity"] == pytest.approx(decision.offers[0].propensity)
    assert row.context["products"] == ["current_account"]
    assert row.policy_name == "beta-bernoulli" and row.latency_ms > 0


def test_no_risk_assessment_allows_only_r1(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer("deposit", risk_level="R1"), offer("fund", risk_level="R3")])
    decision = db_engine.decide(DecisionRequest("c-1", "app_banner", context={}, limit=2), now=NOW)
    assert {c.offer_id: c.reason for c in decision.candidates} == {
        "deposit": None,
        "fund": "RISK_PROFILE_MISSING",
    }


def test_no_eligible_offer_is_a_logged_empty_answer(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer("risky", risk_level="R5")])
    decision = decide(db_engine)
    assert decision.offers == ()
    [row] = logged_decisions(db_engine)
    assert row.offers == [] and row.candidates == {"risky": "UNSUITABLE_RISK"}
    assert recorded_contacts(db_engine) == []


def test_top_n_offers_are_distinct_with_conditional_propensities(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer(f"o{i}", value=100.0 + 10 * i) for i in range(5)])
    decision = decide(db_engine, limit=3)
    assert [o.rank for o in decision.offers] == [1, 2, 3]
    assert len({o.offer_id for o in decision.offers}) == 3
    # Each rank's propensity is the policy's probability over the offers not drawn yet, judged
    # on the payoff value x weight - cost, mixed with the engine's epsilon.
    catalog = db_engine.catalog.current()
    policy = make_policy(db_engine.settings.default_policy, seed=0)
    remaining = [f"o{i}" for i in range(5)]
    for shown in decision.offers:
        probabilities = policy.predict_proba_one(
            {},
            {o: catalog.action_features[o] for o in remaining},
            {o: (catalog.offers[o].value, -catalog.offers[o].cost) for o in remaining},
        )
        expected = mix_uniform(probabilities, db_engine.settings.epsilon)
        assert shown.propensity == pytest.approx(expected[shown.offer_id])
        remaining.remove(shown.offer_id)
    assert decision.offers[0].offer_id == "o4"  # the untrained policy prefers the dearest offer


def test_logged_propensity_is_the_drawing_frequency(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, epsilon=0.4)
    configure(engine, [offer("a", value=300.0), offer("b", value=200.0), offer("c", value=100.0)])
    n = 3000
    shown = Counter(
        decide(engine, f"c-{i}", at=NOW + timedelta(seconds=i)).offers[0].offer_id for i in range(n)
    )
    logged = {
        row.offers[0]["offer_id"]: row.offers[0]["propensity"] for row in logged_decisions(engine)
    }
    for offer_id, propensity in logged.items():
        tolerance = 4 * (propensity * (1 - propensity) / n) ** 0.5
        assert abs(shown[offer_id] / n - propensity) < tolerance


def test_channel_caps_per_day_and_week(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [offer(f"o{i}") for i in range(4)],
        policy=ContactPolicy(channel_caps={"app_banner": ChannelCaps(per_day=2, per_week=3)}),
    )
    assert len(decide(db_engine, limit=3).offers) == 2  # the cap trims the slate
    blocked = decide(db_engine, at=NOW + timedelta(hours=1))
    assert blocked.offers == ()
    assert {c.reason for c in blocked.candidates} == {"CHANNEL_DAILY_CAP"}
    assert len(decide(db_engine, at=NOW + timedelta(hours=25)).offers) == 1  # a new day
    weekly = decide(db_engine, at=NOW + timedelta(hours=50))
    assert weekly.offers == () and {c.reason for c in weekly.candidates} == {"CHANNEL_WEEKLY_CAP"}
    assert decide(db_engine, channel="sms", at=NOW + timedelta(hours=50)).offers  # other channel
    assert len(decide(db_engine, at=NOW + timedelta(days=8)).offers) == 1


def test_total_weekly_cap_spans_channels(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer("o1"), offer("o2")], policy=ContactPolicy(total_per_week=2))
    decide(db_engine, channel="sms")
    decide(db_engine, channel="app_banner", at=NOW + timedelta(minutes=1))
    third = decide(db_engine, channel="app_banner", at=NOW + timedelta(minutes=2))
    assert third.offers == () and {c.reason for c in third.candidates} == {"TOTAL_WEEKLY_CAP"}


def test_offer_cap_over_n_days(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [offer("best", value=1000.0), offer("other", value=10.0)],
        policy=ContactPolicy(offer_max_contacts=2, offer_window_days=10),
    )
    engine = db_engine
    firsts = [decide(engine, at=NOW + timedelta(days=d)).offers[0].offer_id for d in range(3)]
    third = decide(engine, at=NOW + timedelta(days=3))
    reasons = {c.offer_id: c.reason for c in third.candidates}
    assert firsts.count("best") == 2 or reasons["best"] == "OFFER_CAP"
    assert reasons["best"] == "OFFER_CAP"
    assert decide(engine, at=NOW + timedelta(days=20)).candidates[0].reason is None


def test_refusal_starts_a_cool_down(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [offer("loan", value=1000.0), offer("card", value=10.0)],
        policy=ContactPolicy(refusal_cooldown_days=30),
    )
    first = decide(db_engine)
    assert first.offers[0].offer_id == "loan"
    refuse(db_engine, first, "loan", "e-1", NOW + timedelta(minutes=1))
    later = decide(db_engine, at=NOW + timedelta(days=10))
    assert {c.offer_id: c.reason for c in later.candidates}["loan"] == "REFUSAL_COOLDOWN"
    assert later.offers[0].offer_id == "card"
    after = decide(db_engine, at=NOW + timedelta(days=31))
    assert {c.offer_id: c.reason for c in after.candidates}["loan"] is None


def test_quiet_hours_follow_the_customers_time_zone(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [offer("o1")],
        policy=ContactPolicy(quiet_hours={"sms": QuietHours(start=_clock(21), end=_clock(8))}),
    )
    evening_utc = datetime(2026, 6, 15, 20, 30, tzinfo=UTC)  # 05:30 next day in Tokyo
    assert decide(db_engine, "c-utc", channel="sms", at=evening_utc, timezone="UTC").offers
    tokyo = decide(db_engine, "c-tokyo", channel="sms", at=evening_utc, timezone="Asia/Tokyo")
    assert tokyo.offers == () and tokyo.candidates[0].reason == "QUIET_HOURS"
    assert decide(
        db_engine, "c-tokyo", channel="app_banner", at=evening_utc, timezone="Asia/Tokyo"
    ).offers  # quiet hours are per channel


def test_unknown_time_zone_names_the_field(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer("o1")])
    with pytest.raises(InvalidInput) as error:
        decide(db_engine, timezone="Mars/Olympus")
    assert error.value.field == "context.timezone"
    assert logged_decisions(db_engine) == []


def test_count_budget_is_never_overspent_and_matches_the_log(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [offer("loan", value=1000.0), offer("card", value=10.0)],
        [budget("loan-budget", "loan", 3)],
    )
    chosen = [decide(db_engine, f"c-{i}").offers[0].offer_id for i in range(8)]
    assert chosen.count("loan") == 3
    assert spent_units(db_engine) == {"loan-budget": to_units(3)}
    assert charges_in_log(db_engine) == spent_units(db_engine)
    last = decide(db_engine, "c-last")
    assert {c.offer_id: c.reason for c in last.candidates}["loan"] == "BUDGET_EXHAUSTED"


def test_money_budget_of_a_campaign_is_shared(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [
            offer("loan", value=1000.0, cost=2.5, campaign_id="spring"),
            offer("car", value=900.0, cost=2.5, campaign_id="spring"),
            offer("card", value=10.0, cost=0.0),
        ],
        [budget("spring-money", "spring", 10.0, scope="campaign", kind="money")],
        campaigns=["spring"],
    )
    shown = [o.offer_id for i in range(6) for o in decide(db_engine, f"c-{i}", limit=2).offers]
    assert shown.count("loan") + shown.count("car") == 4  # 4 x 2.5 = 10
    assert spent_units(db_engine) == {"spring-money": to_units(10.0)}
    assert charges_in_log(db_engine) == spent_units(db_engine)


def test_daily_limit_resets_each_business_day(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer("loan", value=1000.0)], [budget("b", "loan", 100, daily_limit=2)])
    day_one = [decide(db_engine, f"c-{i}", at=NOW + timedelta(minutes=i)).offers for i in range(3)]
    assert [len(x) for x in day_one] == [1, 1, 0]
    assert len(decide(db_engine, "c-9", at=NOW + timedelta(days=1)).offers) == 1


def test_even_pacing_holds_spend_to_the_elapsed_share(db_engine: DecisionEngine) -> None:
    start = NOW - timedelta(days=1)
    configure(
        db_engine,
        [offer("loan", value=1000.0)],
        [
            budget(
                "b",
                "loan",
                100,
                pacing="even",
                pacing_slack=0.0,
                flight_start=start,
                flight_end=start + timedelta(days=10),
            )
        ],
    )
    shown = sum(len(decide(db_engine, f"c-{i}").offers) for i in range(15))
    assert shown == 10  # 10 % of the flight has elapsed
    later = sum(
        len(decide(db_engine, f"d-{i}", at=NOW + timedelta(days=1)).offers) for i in range(15)
    )
    assert later == 10


def test_budget_outside_its_flight_excludes_the_offer(db_engine: DecisionEngine) -> None:
    configure(
        db_engine,
        [offer("loan")],
        [
            budget(
                "b",
                "loan",
                10,
                flight_start=NOW + timedelta(days=1),
                flight_end=NOW + timedelta(days=2),
            )
        ],
    )
    assert decide(db_engine).candidates[0].reason == "BUDGET_OUTSIDE_FLIGHT"


def test_limit_outside_its_range_is_rejected(db_engine: DecisionEngine) -> None:
    configure(db_engine, [offer("o1")])
    with pytest.raises(InvalidInput) as error:
        decide(db_engine, limit=0)
    assert error.value.field == "limit"


def test_catalogue_change_reaches_another_worker_within_seconds(database_url: str) -> None:
    worker_a = open_engine(database_url)
    worker_b = open_engine(database_url)
    configure(worker_a, [offer("old")])
    assert [o.offer_id for o in decide(worker_b).offers] == ["old"]
    configure(worker_a, [offer("new", value=10_000.0)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if decide(worker_b, f"c-{time.monotonic()}").offers[0].offer_id == "new":
            break
        time.sleep(0.02)
    else:
        pytest.fail("worker b never saw the new offer")


def _clock(hour: int):
    return datetime(2000, 1, 1, hour).time()
