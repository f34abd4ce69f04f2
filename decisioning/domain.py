"""Domain types of the next-best-offer engine: offers, budgets, contact policy, decisions, events.

Values are frozen dataclasses that check their invariants when built and raise ``InvalidInput``
naming the field, so the API, the CLI and the simulator share one set of checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal, NamedTuple, get_args

from decisioning.errors import InvalidInput
from decisioning.rules import Rule, RuleError, parse_rule

Channel = Literal["app_banner", "push", "sms", "email", "call_centre", "rm_call"]
CHANNELS: tuple[str, ...] = get_args(Channel)
EventType = Literal["impression", "click", "accept", "refuse", "convert"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
LifecycleStage = Literal["new", "growing", "mature", "churn_risk"]
LIFECYCLE_STAGES: tuple[str, ...] = get_args(LifecycleStage)
BudgetKind = Literal["money", "count"]
Pacing = Literal["even", "asap", "dual"]
ID_MAX = 64


def check_id(value: str, field_name: str) -> str:
    """Ids are 1-64 printable characters without spaces."""
    if not value or len(value) > ID_MAX or not value.isprintable() or " " in value:
        raise InvalidInput(
            f"must be 1-{ID_MAX} printable characters without spaces", field=field_name
        )
    return value


def check_number(value: float, field_name: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"must be a finite number, got {value!r}", field=field_name)
    if minimum is not None and value < minimum:
        raise InvalidInput(f"must be >= {minimum}, got {value}", field=field_name)
    return float(value)


def check_aware(value: datetime | None, field_name: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput("must carry a time zone (e.g. 2026-01-01T00:00:00Z)", field=field_name)


def risk_number(level: str, field_name: str, prefix: str) -> int:
    """'R3' -> 3 (products) or 'C3' -> 3 (customers' tolerance)."""
    if len(level) == 2 and level[0] == prefix and level[1] in "12345":
        return int(level[1])
    raise InvalidInput(f"must be one of {prefix}1..{prefix}5, got {level!r}", field=field_name)


@dataclass(frozen=True, slots=True)
class Offer:
    """Something a channel can put in front of a customer.

    ``value`` is the bank's value if accepted and ``cost`` the cost of one contact, both in the
    bank's currency; ``weight`` is the marketer's lever in arbitration (1 = neutral). A
    ``retired`` offer is no longer made (a retire action sets it when the offer's measured
    incremental value does not cover its contacts; a marketer may set or clear it).
    ``incrementality`` is the share of the conversions the offer brings that would not have
    happened without it, in [-1, 1]: 1 until a re-value action measures it against the holdout;
    arbitration multiplies the policy's P(accept) by it.
    """

    offer_id: str
    name: str
    product: str
    category: str
    channels: tuple[str, ...]
    value: float
    cost: float = 0.0
    risk_level: str = "R1"
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    weight: float = 1.0
    lifecycle_stages: tuple[str, ...] = ()
    eligibility: dict[str, Any] | None = None
    campaign_id: str | None = None
    retired: bool = False
    incrementality: float = 1.0
    # Derived once here so the hot path reads them instead of parsing per decision.
    rule: Rule | None = field(default=None, init=False, compare=False, repr=False)
    risk: int = field(default=1, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_id(self.offer_id, "offer_id")
        check_id(self.product, "product")
        if self.campaign_id is not None:
            check_id(self.campaign_id, "campaign_id")
        if not self.name.strip():
            raise InvalidInput("must not be empty", field="name")
        if not self.channels:
            raise InvalidInput("must name at least one channel", field="channels")
        for i, channel in enumerate(self.channels):
            if channel not in CHANNELS:
                raise InvalidInput(f"unknown channel {channel!r}", field=f"channels[{i}]")
        for i, stage in enumerate(self.lifecycle_stages):
            if stage not in LIFECYCLE_STAGES:
                raise InvalidInput(
                    f"unknown lifecycle stage {stage!r}", field=f"lifecycle_stages[{i}]"
                )
        check_number(self.value, "value", minimum=0.0)
        check_number(self.cost, "cost", minimum=0.0)
        check_number(self.weight, "weight", minimum=0.0)
        if not isinstance(self.retired, bool):
            raise InvalidInput("must be true or false", field="retired")
        if not -1.0 <= check_number(self.incrementality, "incrementality") <= 1.0:
            raise InvalidInput("must be within [-1, 1]", field="incrementality")
        object.__setattr__(self, "risk", risk_number(self.risk_level, "risk_level", "R"))
        check_aware(self.valid_from, "valid_from")
        check_aware(self.valid_until, "valid_until")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise InvalidInput("must be after valid_from", field="valid_until")
        if self.eligibility is not None:
            try:
                rule = parse_rule(self.eligibility, path="eligibility")
            except RuleError as exc:
                raise InvalidInput(str(exc), field=exc.path) from None
            object.__setattr__(self, "rule", rule)


@dataclass(frozen=True, slots=True)
class Budget:
    """Money or a count of contacts for one offer or one campaign over a flight.

    A contact charges ``offer.cost`` to a money budget and 1 to a count budget. With even pacing
    the spend may not run ahead of ``amount x (elapsed share of the flight + pacing_slack)``.
    """

    budget_id: str
    scope: Literal["offer", "campaign"]
    target_id: str
    kind: BudgetKind
    amount: float
    flight_start: datetime
    flight_end: datetime
    daily_limit: float | None = None
    pacing: Pacing = "even"
    pacing_slack: float = 0.05

    def __post_init__(self) -> None:
        check_id(self.budget_id, "budget_id")
        check_id(self.target_id, "target_id")
        if self.scope not in ("offer", "campaign"):
            raise InvalidInput("must be 'offer' or 'campaign'", field="scope")
        if self.kind not in ("money", "count"):
            raise InvalidInput("must be 'money' or 'count'", field="kind")
        if self.pacing not in ("even", "asap", "dual"):
            raise InvalidInput("must be 'even', 'asap' or 'dual'", field="pacing")
        check_number(self.amount, "amount", minimum=0.0)
        check_aware(self.flight_start, "flight_start")
        check_aware(self.flight_end, "flight_end")
        if self.flight_end <= self.flight_start:
            raise InvalidInput("must be after flight_start", field="flight_end")
        if self.daily_limit is not None:
            check_number(self.daily_limit, "daily_limit", minimum=0.0)
        if not 0.0 <= check_number(self.pacing_slack, "pacing_slack") <= 1.0:
            raise InvalidInput("must be within [0, 1]", field="pacing_slack")

    def charge(self, offer: Offer) -> float:
        """What one contact with ``offer`` costs this budget."""
        return offer.cost if self.kind == "money" else 1.0

    def cap_at(self, now: datetime) -> float:
        """Most that may be spent by ``now``: the pacing target plus slack, at most ``amount``.

        ``asap`` and ``dual`` budgets are held to their amount only: a dual budget is paced by
        its price (``decisioning.budgets.update_prices``), which a hard cap would blind.
        """
        if self.pacing in ("asap", "dual"):
            return self.amount
        elapsed = (now - self.flight_start) / (self.flight_end - self.flight_start)
        return self.amount * min(1.0, max(0.0, elapsed) + self.pacing_slack)


@dataclass(frozen=True, slots=True)
class ChannelCaps:
    per_day: int | None = None
    per_week: int | None = None


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No contact from ``start`` to ``end`` local time; wraps midnight when ``end <= start``."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


MAX_CHANNEL_CAP = 1000
"""The largest channel cap (per day, per week) and total weekly cap a policy may set."""
MAX_OFFER_CAP = 100
"""The largest number of contacts per offer and window a policy may allow."""
MAX_OFFER_WINDOW_DAYS = 365
"""The longest offer window. The three bound what a customer's contact history must keep to
enforce any admissible policy, the one set later included (``ContactHistory``)."""


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """Caps per customer over rolling windows (a day is 24 hours, a week 7 days).

    Each offer a decision returns counts as one contact on the decision's channel.
    """

    channel_caps: dict[str, ChannelCaps] = field(default_factory=dict)
    total_per_week: int | None = None
    offer_max_contacts: int | None = None
    offer_window_days: int = 7
    refusal_cooldown_days: int = 0
    quiet_hours: dict[str, QuietHours] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, mapping in (
            ("channel_caps", self.channel_caps),
            ("quiet_hours", self.quiet_hours),
        ):
            for channel in mapping:
                if channel not in CHANNELS:
                    raise InvalidInput(f"unknown channel {channel!r}", field=f"{name}.{channel}")
        caps: list[tuple[str, int | None, int]] = [
            (f"channel_caps.{channel}.{name}", getattr(channel_caps, name), MAX_CHANNEL_CAP)
            for channel, channel_caps in self.channel_caps.items()
            for name in ("per_day", "per_week")
        ]
        caps.append(("total_per_week", self.total_per_week, MAX_CHANNEL_CAP))
        caps.append(("offer_max_contacts", self.offer_max_contacts, MAX_OFFER_CAP))
        for name, cap, most in caps:
            if cap is not None and not 0 <= cap <= most:
                raise InvalidInput(f"must be within [0, {most}]", field=name)
        if not 1 <= self.offer_window_days <= MAX_OFFER_WINDOW_DAYS:
            raise InvalidInput(
                f"must be within [1, {MAX_OFFER_WINDOW_DAYS}]", field="offer_window_days"
            )
        if not 0 <= self.refusal_cooldown_days <= 365:
            raise InvalidInput("must be within [0, 365]", field="refusal_cooldown_days")


MAX_CONTEXT_KEYS = 100
MAX_CONTEXT_STRING = 256
MAX_CONTEXT_LIST = 100


def _scalar_attribute_problem(value: Any) -> str | None:
    """What is wrong with one attribute value, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isfinite(value) else f"must be a finite number, got {value!r}"
    if isinstance(value, str):
        return (
            None if len(value) <= MAX_CONTEXT_STRING else f"at most {MAX_CONTEXT_STRING} characters"
        )
    return "must be a number, string, boolean or null"


def check_context(context: Mapping[str, Any], prefix: str = "context") -> None:
    """Customer attributes are flat: scalars, or lists of scalars (e.g. products held).

    A field's name is only spelt out for an error: every decision request is checked.
    """
    if len(context) > MAX_CONTEXT_KEYS:
        raise InvalidInput(f"at most {MAX_CONTEXT_KEYS} attributes", field=prefix)
    for key, value in context.items():
        if not 1 <= len(key) <= ID_MAX:
            raise InvalidInput(
                f"attribute names have 1-{ID_MAX} characters", field=f"{prefix}.{key}"
            )
        if isinstance(value, list | tuple):
            if len(value) > MAX_CONTEXT_LIST:
                raise InvalidInput(f"at most {MAX_CONTEXT_LIST} items", field=f"{prefix}.{key}")
            for i, item in enumerate(value):
                problem = _scalar_attribute_problem(item)
                if problem is not None:
                    raise InvalidInput(problem, field=f"{prefix}.{key}[{i}]")
        else:
            problem = _scalar_attribute_problem(value)
            if problem is not None:
                raise InvalidInput(problem, field=f"{prefix}.{key}")


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    customer_id: str
    channel: str
    placement: str = "default"
    context: dict[str, Any] = field(default_factory=dict)
    limit: int = 1

    def __post_init__(self) -> None:
        check_id(self.customer_id, "customer_id")
        check_id(self.placement, "placement")
        if self.channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {self.channel!r}", field="channel")
        check_context(self.context)


class Candidate(NamedTuple):
    """One offer considered: why it was excluded, or its score and priority.

    A named tuple rather than a frozen dataclass: a decision builds one per offer in the
    catalogue, and a frozen dataclass costs several times more to create.
    """

    offer_id: str
    reason: str | None = None
    score: float | None = None
    priority: float | None = None


@dataclass(frozen=True, slots=True)
class ChosenOffer:
    """An offer returned: ``propensity`` is the probability it was drawn at ``rank`` given the
    offers above it."""

    offer_id: str
    rank: int
    score: float
    priority: float
    propensity: float
    name: str
    product: str
    value: float


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    created_at: datetime
    customer_id: str
    channel: str
    placement: str
    offers: tuple[ChosenOffer, ...]
    explanation: dict[str, str | tuple[float, float]]
    """Every candidate offer -> its exclusion reason, or (score, priority); as logged."""
    policy_name: str
    policy_version: int
    latency_ms: float
    experiment_id: str | None = None
    cell: str | None = None

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(
            Candidate(offer_id, reason=logged)
            if isinstance(logged, str)
            else Candidate(offer_id, score=logged[0], priority=logged[1])
            for offer_id, logged in self.explanation.items()
        )


@dataclass(frozen=True, slots=True)
class Event:
    """An outcome, idempotent by ``event_id``: of an offer a decision chose (``decision_id`` and
    ``offer_id``), or of a customer alone (``customer_id``, type ``convert``): a conversion the
    bank's own systems saw, contacted or not. Customer outcomes are how the conversions of a
    holdout (who get no offers to respond to) reach its metrics; report each conversion once,
    through one of the two."""

    event_id: str
    decision_id: str | None
    offer_id: str | None
    type: EventType
    occurred_at: datetime
    value: float = 0.0
    customer_id: str | None = None
    product: str | None = None
    """A customer outcome's product, which moves that product's offers' uplift measures."""
