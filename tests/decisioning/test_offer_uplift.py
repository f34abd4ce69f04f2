"""Each offer's own uplift: the bank holdout's ghost draws against the customers shown it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from decisioning.catalog import get_offer, put_holdout
from decisioning.domain import DecisionRequest, Event
from decisioning.engine import DecisionEngine
from decisioning.errors import InvalidInput
from decisioning.feedback import decide_action, review
from decisioning.reports import experiment_report
from decisioning.sql.repositories import feedback_actions_of
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import decisions
from experiments.design import Holdout
from tests.conftest import open_engine
from tests.support import NOW, configure, offer, send_events


def _engine(url: str) -> DecisionEngine:
    engine = open_engine(url, epsilon=0.5)
    configure(
        engine,
        [offer("card", product="card", value=100.0), offer("fund", product="fund", value=100.0)],
    )
    with unit_of_work(engine.db) as connection:
        put_holdout(connection, Holdout(share=0.5), NOW)
    engine.catalog.invalidate()
    return engine


def _decide_measured(engine: DecisionEngine, customer: str) -> tuple[Any, str, str]:
    """One decision and the offer measure it joined: (decision, offer id, cell)."""
    answer = engine.decide(DecisionRequest(customer, "app_banner", context={}), now=NOW)
    with engine.db.connect() as connection:
        row = connection.execute(
            select(decisions.c.memberships).where(decisions.c.decision_id == answer.decision_id)
        ).scalar_one()
    [(measure, cell)] = [(e, c) for e, c in row if e.startswith("offer:")]
    return answer, measure.removeprefix("offer:"), cell


def test_held_out_customers_record_what_they_would_have_been_shown(sqlite_url: str) -> None:
    engine = _engine(sqlite_url)
    answers = [
        engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=NOW)
        for i in range(300)
    ]
    with engine.db.connect() as connection:
        logged = {r.decision_id: r.memberships for r in connection.execute(select(decisions))}
    ghosts = shown = 0
    for answer in answers:
        offer_cells = [(e, c) for e, c in logged[answer.decision_id] if e.startswith("offer:")]
        if answer.offers:  # the campaign side: the offer shown is its measure's "shown" unit
            assert offer_cells == [(f"offer:{answer.offers[0].offer_id}", "shown")]
            shown += 1
        else:  # held out: one ghost draw among the same offers, nothing contacted
            [(experiment_id, cell)] = offer_cells
            assert cell == "holdout" and experiment_id in {"offer:card", "offer:fund"}
            ghosts += 1
    assert abs(ghosts - 150) < 4 * (300 * 0.25) ** 0.5 and ghosts + shown == 300


def test_an_offers_measure_counts_only_its_own_outcomes(sqlite_url: str) -> None:
    """The card converts 40% of those shown it and 10% of the others (organically); the fund
    converts 10% either way: the card's measured uplift is about +0.3, the fund's about 0."""
    engine = _engine(sqlite_url)
    rng = np.random.default_rng(11)
    events: list[Event] = []
    converted: dict[tuple[str, str], int] = {}  # (offer, cell) -> conversions of its product
    for i in range(1200):
        customer = f"c-{i}"
        answer, product, cell = _decide_measured(engine, customer)
        rate = 0.4 if (product, cell) == ("card", "shown") else 0.1
        if rng.random() < rate:
            converted[(product, cell)] = converted.get((product, cell), 0) + 1
            if cell == "shown":  # converted on the offer itself
                events.append(Event(f"e-{i}", answer.decision_id, product, "convert", NOW))
            else:  # the bank saw it convert without an offer
                events.append(
                    Event(
                        f"e-{i}", None, None, "convert", NOW, customer_id=customer, product=product
                    )
                )
        # Conversions of other products never move this offer's measure.
        other = "fund" if product == "card" else "card"
        events.append(
            Event(f"x-{i}", None, None, "convert", NOW, customer_id=customer, product=other)
        )
    send_events(engine, events, NOW + timedelta(hours=1))

    with engine.db.connect() as connection:
        card = experiment_report(connection, "offer:card")
        fund = experiment_report(connection, "offer:fund")
    for report, product in ((card, "card"), (fund, "fund")):
        assert report["control"] == "holdout"
        conversions = report["metrics"]["conversion"]["cells"]
        for cell in ("holdout", "shown"):
            n = conversions[cell]["n"]
            assert conversions[cell]["mean"] * n == pytest.approx(converted.get((product, cell), 0))
    [card_lift] = card["metrics"]["conversion"]["comparisons"]
    [fund_lift] = fund["metrics"]["conversion"]["comparisons"]
    assert card_lift["ci"][0] > 0.15 and card_lift["sequential_p_value"] < 0.01
    assert fund_lift["ci"][0] < 0 < fund_lift["ci"][1]


def test_customer_outcomes_name_a_valid_product(sqlite_url: str) -> None:
    engine = _engine(sqlite_url)
    answer = engine.decide(DecisionRequest("c-1", "app_banner", context={}), now=NOW)
    at = datetime(2026, 6, 15, 13, tzinfo=UTC)
    with pytest.raises(InvalidInput) as bad:
        send_events(
            engine, [Event("e", None, None, "convert", at, customer_id="c-1", product="a b")], at
        )
    assert bad.value.field == "events[0].product"
    if answer.offers:
        shown = answer.offers[0].offer_id
        with pytest.raises(InvalidInput) as bad:
            send_events(
                engine, [Event("e", answer.decision_id, shown, "convert", at, product="x")], at
            )
        assert bad.value.field == "events[0].product"


# Conversion rates of each offer's product for customers shown it and held out from it: a real
# uplift, none, and a harmful one ("sleeping dogs"). Each is worth 100 and costs 10 a contact.
RATES = {"good": (0.5, 0.1), "dud": (0.1, 0.1), "harm": (0.02, 0.1)}


def _measured_catalogue(url: str, retire: str = "off", revalue: str = "off") -> DecisionEngine:
    engine = open_engine(url, epsilon=1.0)  # uniform draws: each offer gets its share
    configure(engine, [offer(o, value=100.0, cost=10.0) for o in RATES])
    holdout = Holdout(share=0.5, retire=retire, revalue=revalue)  # type: ignore[arg-type]
    with unit_of_work(engine.db) as connection:
        put_holdout(connection, holdout, NOW)
    engine.catalog.invalidate()
    rng = np.random.default_rng(5)
    events = []
    for i in range(3000):
        customer = f"c-{i}"
        _, product, cell = _decide_measured(engine, customer)
        if rng.random() < RATES[product][0 if cell == "shown" else 1]:
            events.append(
                Event(
                    f"e-{i}",
                    None,
                    None,
                    "convert",
                    NOW,
                    100.0,
                    customer_id=customer,
                    product=product,
                )
            )
    send_events(engine, events, NOW + timedelta(hours=1))
    return engine


def test_offers_that_do_not_pay_for_their_contacts_are_retired(sqlite_url: str) -> None:
    engine = _measured_catalogue(sqlite_url, retire="auto", revalue="auto")
    later = NOW + timedelta(days=1)
    with unit_of_work(engine.db) as connection:
        actions = review(connection, later, "beta-bernoulli")
    retired = {a["details"]["offer_id"]: a for a in actions if a["kind"] == "retire"}
    assert set(retired) == {"dud", "harm"}
    # The one that pays for itself is re-valued instead: the retired are not worth it.
    assert [
        (a["kind"], a["details"]["offer_id"]) for a in actions if a not in retired.values()
    ] == [("revalue", "good")]
    for action in retired.values():
        assert action["kind"] == "retire" and action["status"] == "applied"
        assert action["details"]["sequential_ci"][1] < action["details"]["break_even"]
    engine.catalog.invalidate()
    decision = engine.decide(DecisionRequest("c-new", "app_banner", context={}), now=later)
    if decision.offers:
        assert decision.offers[0].offer_id == "good"
    assert decision.explanation["dud"] == decision.explanation["harm"] == "RETIRED"
    with unit_of_work(engine.db) as connection:
        assert review(connection, later, "beta-bernoulli") == []  # retired once, not again


def test_with_approval_nothing_is_retired_until_approved(sqlite_url: str) -> None:
    engine = _measured_catalogue(sqlite_url, retire="approval")
    later = NOW + timedelta(days=1)
    with unit_of_work(engine.db) as connection:
        proposed = review(connection, later, "beta-bernoulli")
        assert review(connection, later, "beta-bernoulli") == []  # one pending per offer
    assert {a["details"]["offer_id"] for a in proposed} == {"dud", "harm"}
    assert all(a["status"] == "pending" for a in proposed)
    with engine.db.connect() as connection:
        assert not any(get_offer(connection, o).retired for o in RATES)
    harm = next(a for a in proposed if a["details"]["offer_id"] == "harm")
    with unit_of_work(engine.db) as connection:
        decide_action(
            connection, "offer:harm", harm["action_id"], approve=True, decided_by="me", now=later
        )
    with engine.db.connect() as connection:
        assert [o for o in RATES if get_offer(connection, o).retired] == ["harm"]
        assert [a["status"] for a in feedback_actions_of(connection, "offer:harm")] == ["applied"]


def test_revalued_arbitration_uses_the_measured_incrementality(sqlite_url: str) -> None:
    engine = _measured_catalogue(sqlite_url, revalue="auto")
    later = NOW + timedelta(days=1)
    with unit_of_work(engine.db) as connection:
        actions = {a["details"]["offer_id"]: a for a in review(connection, later, "b")}
        assert review(connection, later, "b") == []  # nothing moved since: no new action
    assert {a["kind"] for a in actions.values()} == {"revalue"}
    measured = {o: a["details"]["to_incrementality"] for o, a in actions.items()}
    # good: (0.5 - 0.1) / 0.5 = 0.8; harm: (0.02 - 0.1) / 0.02 < -1, clipped; dud: about 0,
    # and a change of less than REVALUE_STEP from 1 is never proposed.
    assert measured["good"] == pytest.approx(0.8, abs=0.1)
    assert measured["harm"] == -1.0
    assert abs(measured["dud"]) < 0.5
    engine.catalog.invalidate()
    decision = engine.decide(DecisionRequest("c-new", "app_banner", context={}), now=later)
    for offer_id, incrementality in measured.items():
        score, priority = decision.explanation[offer_id]
        assert priority == pytest.approx(score * incrementality * 100.0 - 10.0)
