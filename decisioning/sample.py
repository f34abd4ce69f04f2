"""A small retail-bank catalogue for the demo, the benchmark and the tests."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Connection

from decisioning.catalog import put_budget, put_campaign, put_contact_policy, put_offer
from decisioning.domain import Budget, ChannelCaps, ContactPolicy, Offer, QuietHours

ALL_DIGITAL = ("app_banner", "push", "email")


def sample_offers() -> list[Offer]:
    return [
        Offer(
            "credit-card-gold",
            "Gold credit card",
            "credit_card",
            "cards",
            (*ALL_DIGITAL, "sms"),
            value=120.0,
            cost=0.02,
            risk_level="R1",
            lifecycle_stages=("growing", "mature"),
            eligibility={"attr": "age", "op": ">=", "value": 18, "reason": "UNDERAGE"},
        ),
        Offer(
            "wealth-fund",
            "Balanced wealth fund",
            "wealth_fund",
            "investments",
            ("app_banner", "email", "rm_call"),
            value=400.0,
            cost=0.05,
            risk_level="R3",
            eligibility={"attr": "segment", "op": "in", "value": ["affluent", "private"]},
        ),
        Offer(
            "time-deposit",
            "12-month time deposit",
            "time_deposit",
            "savings",
            ALL_DIGITAL,
            value=60.0,
            cost=0.01,
            risk_level="R1",
        ),
        Offer(
            "consumer-loan",
            "Personal loan",
            "consumer_loan",
            "lending",
            (*ALL_DIGITAL, "sms"),
            value=250.0,
            cost=0.03,
            risk_level="R2",
            campaign_id="spring-lending",
            eligibility={
                "all": [
                    {"attr": "age", "op": "between", "value": [21, 70]},
                    {"attr": "lifecycle", "op": "!=", "value": "churn_risk"},
                ]
            },
        ),
        Offer(
            "car-loan",
            "Car loan",
            "car_loan",
            "lending",
            ("app_banner", "email", "call_centre"),
            value=300.0,
            cost=0.5,
            risk_level="R2",
            campaign_id="spring-lending",
            eligibility={"attr": "group", "op": "==", "value": "car_owner"},
        ),
        Offer(
            "pension-account",
            "Private pension account",
            "pension_account",
            "pensions",
            ALL_DIGITAL,
            value=180.0,
            cost=0.02,
            risk_level="R2",
            eligibility={"attr": "age", "op": "between", "value": [30, 62]},
        ),
        Offer(
            "payroll-bundle",
            "Payroll cross-sell bundle",
            "payroll_bundle",
            "bundles",
            ALL_DIGITAL,
            value=150.0,
            cost=0.02,
            risk_level="R1",
            eligibility={"attr": "group", "op": "==", "value": "payroll"},
        ),
        Offer(
            "home-insurance",
            "Home insurance",
            "home_insurance",
            "insurance",
            (*ALL_DIGITAL, "call_centre"),
            value=90.0,
            cost=0.02,
            risk_level="R1",
        ),
        Offer(
            "win-back",
            "Fee waiver win-back",
            "fee_waiver",
            "retention",
            ("email", "sms", "push"),
            value=80.0,
            cost=0.05,
            risk_level="R1",
            lifecycle_stages=("churn_risk",),
        ),
    ]


def sample_contact_policy() -> ContactPolicy:
    return ContactPolicy(
        channel_caps={
            "sms": ChannelCaps(per_day=1, per_week=2),
            "push": ChannelCaps(per_day=2),
            "email": ChannelCaps(per_week=3),
            "rm_call": ChannelCaps(per_week=1),
        },
        total_per_week=10,
        offer_max_contacts=3,
        offer_window_days=7,
        refusal_cooldown_days=30,
        quiet_hours={
            "sms": QuietHours(start=time(21), end=time(8)),
            "push": QuietHours(start=time(22), end=time(7)),
        },
    )


def load_sample_catalog(connection: Connection, now: datetime | None = None) -> None:
    """Write the sample offers, a lending campaign with a budget, and the contact policy."""
    now = now or datetime.now(UTC)
    put_campaign(connection, "spring-lending", "Spring lending campaign", now)
    for offer in sample_offers():
        put_offer(connection, offer, now)
    put_budget(
        connection,
        Budget(
            "spring-lending-money",
            "campaign",
            "spring-lending",
            "money",
            amount=5_000.0,
            flight_start=now - timedelta(days=1),
            flight_end=now + timedelta(days=60),
            daily_limit=500.0,
        ),
        now,
    )
    put_budget(
        connection,
        Budget(
            "wealth-fund-calls",
            "offer",
            "wealth-fund",
            "count",
            amount=2_000,
            flight_start=now - timedelta(days=1),
            flight_end=now + timedelta(days=30),
            pacing="asap",
        ),
        now,
    )
    put_contact_policy(connection, sample_contact_policy(), now)
