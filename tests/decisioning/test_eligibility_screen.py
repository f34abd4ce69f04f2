"""The catalogue's screen by risk tolerance: a decision checks only the offers its customer may
be suitable for, and each offer screened out carries the reason a full check would give; the
offers it checks, it checks by group, with the reason a full check of each would give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.catalog import CatalogSnapshot
from decisioning.domain import CHANNELS, LIFECYCLE_STAGES, ContactPolicy
from decisioning.eligibility import (
    RISK_TOLERANCES,
    CustomerFacts,
    exclusion_reason,
    settled_reason,
)
from decisioning.rules import compile_rule
from tests.support import offer

T0 = datetime(2026, 6, 1, tzinfo=UTC)
moments = st.integers(-30, 30).map(lambda days: T0 + timedelta(days=days))
offers = st.builds(
    lambda i, risk, retired, window, stages, products, rule: offer(
        f"o{i}",
        risk_level=f"R{risk}",
        retired=retired,
        valid_from=T0 + timedelta(days=window[0]) if window and window[0] is not None else None,
        valid_until=T0 + timedelta(days=window[1]) if window and window[1] is not None else None,
        lifecycle_stages=stages,
        product=f"p{products}",
        eligibility=rule,
    ),
    st.integers(0, 30),
    st.integers(1, 5),
    st.booleans(),
    st.none() | st.tuples(st.none() | st.integers(-20, 0), st.none() | st.integers(1, 20)),
    st.lists(st.sampled_from(LIFECYCLE_STAGES), unique=True, max_size=2).map(tuple),
    st.integers(0, 3),
    st.sampled_from(
        [
            None,
            {"attr": "age", "op": ">=", "value": 30},
            {"attr": "age", "op": ">=", "value": 30, "reason": "TOO_YOUNG"},
            {
                "any": [
                    {"attr": "age", "op": "<", "value": 25},
                    {"attr": "age", "op": ">", "value": 60},
                ]
            },
        ]
    ),
)
customers = st.builds(
    lambda tolerance, products, lifecycle, age: CustomerFacts(
        {"age": age}, tolerance, frozenset(f"p{p}" for p in products), lifecycle
    ),
    st.sampled_from(RISK_TOLERANCES),
    st.lists(st.integers(0, 3), max_size=2),
    st.none() | st.sampled_from(LIFECYCLE_STAGES),
    st.integers(18, 90),
)


@settings(max_examples=500)
@given(offers, customers, moments)
def test_a_settled_reason_is_the_one_every_check_of_the_offer_gives(
    offer_, customer: CustomerFacts, now: datetime
) -> None:
    settled = settled_reason(offer_, customer.risk_tolerance)
    if settled is not None:
        rule_check = compile_rule(offer_.rule) if offer_.rule is not None else None
        assert exclusion_reason(offer_, customer, rule_check, now) == settled


@given(st.lists(offers, max_size=12, unique_by=lambda o: o.offer_id))
def test_each_screen_splits_its_channels_offers_into_checked_and_settled_in_catalogue_order(
    offer_list,
) -> None:
    catalog = CatalogSnapshot.build(1, offer_list, [], ContactPolicy())
    for channel in CHANNELS:
        ids = catalog.offer_ids_by_channel[channel]
        for tolerance in RISK_TOLERANCES:
            screen = catalog.screens[channel, tolerance]
            checked = [c.offer.offer_id for c in screen.checked]
            assert checked == [i for i in ids if i not in screen.settled]
            assert set(screen.settled) | set(checked) == set(ids)
            for offer_id, reason in screen.settled.items():
                assert reason == settled_reason(catalog.offers[offer_id], tolerance)
            # Whatever the offer, a suitable customer is never screened out by it.
            assert all(
                catalog.offers[i].retired or catalog.offers[i].risk > (tolerance or 1)
                for i in screen.settled
            )


@settings(max_examples=300)
@given(
    st.lists(offers, max_size=12, unique_by=lambda o: o.offer_id),
    customers,
    moments,
    st.sampled_from(CHANNELS),
)
def test_a_screen_gives_each_checked_offer_the_reason_a_full_check_gives(
    offer_list, customer: CustomerFacts, now: datetime, channel: str
) -> None:
    catalog = CatalogSnapshot.build(1, offer_list, [], ContactPolicy())
    screen = catalog.screens[channel, customer.risk_tolerance]
    full = {
        c.offer.offer_id: exclusion_reason(c.offer, customer, c.rule_check, now)
        for c in screen.checked
    }
    assert screen.eligibility_reasons(customer, now) == {
        offer_id: reason for offer_id, reason in full.items() if reason is not None
    }
    assert list(screen.payoffs) == [c.offer.offer_id for c in screen.checked]
