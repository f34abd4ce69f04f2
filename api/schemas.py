"""Request and response bodies. JSON field names and limits live here and nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

from decisioning.domain import (
    MAX_CHANNEL_CAP,
    MAX_OFFER_CAP,
    MAX_OFFER_WINDOW_DAYS,
    Channel,
    EventType,
    LifecycleStage,
)

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Risk = Literal["R1", "R2", "R3", "R4", "R5"]
Context = Annotated[
    dict[str, Any],
    Field(description="Customer attributes: scalars or lists of scalars (checked by the core)."),
]


class Body(BaseModel):
    """Unknown fields and NaN/infinite numbers are errors, everywhere."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class DecisionIn(Body):
    customer_id: Id
    channel: Channel
    placement: Id = "default"
    context: Context = Field(default_factory=dict)
    limit: int = Field(default=1, ge=1, le=100)
    explain: bool = Field(default=False, description="Include every candidate and its reason.")


class ChosenOfferOut(Body):
    offer_id: str
    rank: int
    score: float
    priority: float
    propensity: float
    name: str
    product: str
    value: float


class CandidateOut(Body):
    offer_id: str
    reason: str | None = None
    score: float | None = None
    priority: float | None = None


class DecisionOut(Body):
    decision_id: str
    created_at: datetime
    customer_id: str
    channel: str
    placement: str
    offers: list[ChosenOfferOut]
    policy: str
    policy_version: int
    experiment_id: str | None = None
    cell: str | None = None
    latency_ms: float
    candidates: list[CandidateOut] | None = None


class EventIn(Body):
    """An offer's outcome (``decision_id`` + ``offer_id``) or, with ``customer_id`` alone, a
    conversion the bank saw without a decision (how holdout customers' conversions count)."""

    event_id: Id
    decision_id: Id | None = None
    offer_id: Id | None = None
    customer_id: Id | None = None
    product: Id | None = Field(
        default=None, description="a customer outcome's product (moves its offers' uplift)"
    )
    type: EventType
    value: float = 0.0
    occurred_at: datetime | None = None


class EventBatchIn(Body):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


def _event_shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "events" in value else "event"


UNION_TAGS = frozenset({"event", "batch"})
"""Tags of tagged unions: not part of a field's path in error messages."""
Events = Annotated[
    Annotated[EventIn, Tag("event")] | Annotated[EventBatchIn, Tag("batch")],
    Discriminator(_event_shape),
]


class EventReceiptOut(Body):
    stored: int
    duplicates: int


class OfferIn(Body):
    name: Name
    product: Id
    category: Id
    channels: list[Channel] = Field(min_length=1)
    value: float = Field(ge=0)
    cost: float = Field(default=0.0, ge=0)
    risk_level: Risk = "R1"
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    weight: float = Field(default=1.0, ge=0)
    lifecycle_stages: list[LifecycleStage] = Field(default_factory=list)
    eligibility: dict[str, Any] | None = None
    campaign_id: Id | None = None
    retired: bool = False
    incrementality: float = Field(default=1.0, ge=-1, le=1)


class OfferOut(OfferIn):
    offer_id: str


class CampaignIn(Body):
    name: Name


class CampaignOut(CampaignIn):
    campaign_id: str


class BudgetIn(Body):
    scope: Literal["offer", "campaign"]
    target_id: Id
    kind: Literal["money", "count"]
    amount: float = Field(ge=0)
    flight_start: datetime
    flight_end: datetime
    daily_limit: float | None = Field(default=None, ge=0)
    pacing: Literal["even", "asap", "dual"] = "even"
    pacing_slack: float = Field(default=0.05, ge=0, le=1)


class BudgetOut(BudgetIn):
    budget_id: str
    spent: float
    remaining: float
    spent_today: float
    price: float | None = Field(
        default=None, description="dual pacing: the budget's price per unit of charge"
    )


class ChannelCapsIn(Body):
    per_day: int | None = Field(default=None, ge=0, le=MAX_CHANNEL_CAP)
    per_week: int | None = Field(default=None, ge=0, le=MAX_CHANNEL_CAP)


class QuietHoursIn(Body):
    start: Annotated[str, StringConstraints(pattern=r"^\d\d:\d\d$")]
    end: Annotated[str, StringConstraints(pattern=r"^\d\d:\d\d$")]


class ContactPolicyIn(Body):
    channel_caps: dict[Channel, ChannelCapsIn] = Field(default_factory=dict)
    total_per_week: int | None = Field(default=None, ge=0, le=MAX_CHANNEL_CAP)
    offer_max_contacts: int | None = Field(default=None, ge=0, le=MAX_OFFER_CAP)
    offer_window_days: int = Field(default=7, ge=1, le=MAX_OFFER_WINDOW_DAYS)
    refusal_cooldown_days: int = Field(default=0, ge=0, le=365)
    quiet_hours: dict[Channel, QuietHoursIn] = Field(default_factory=dict)


class CustomerIn(Body):
    attributes: Context


class CustomerOut(Body):
    customer_id: str
    attributes: dict[str, Any]


class KeyIn(Body):
    role: Literal["channel", "marketer", "analyst", "admin"]
    name: Annotated[str, StringConstraints(max_length=200)] = ""


class KeyOut(Body):
    key: str
    role: str


class ErrorOut(Body):
    code: str
    message: str
    field: str | None = None


Metric = Literal["conversion", "value", "accepts", "clicks", "contacts"]


class CellIn(Body):
    name: Id
    weight: float = Field(gt=0, le=1)
    policy: Id | None = None
    epsilon: float | None = Field(default=None, ge=0, le=1)
    force_offers: list[Id] = Field(default_factory=list)
    exclude_offers: list[Id] = Field(default_factory=list)
    no_offer: bool = False


class ExperimentIn(Body):
    name: Name
    layer: Id
    cells: list[CellIn] = Field(min_length=2, max_length=20)
    primary_metric: Metric
    placement: Id | None = None
    traffic: float = Field(default=1.0, ge=0, le=1)
    layer_range: tuple[int, int] = (0, 10_000)
    targeting: dict[str, Any] | None = None
    guardrail_metrics: list[Metric] = Field(default_factory=list)
    alpha: float = 0.05
    analysis: Literal["sequential", "fixed", "group_sequential"] = "sequential"
    planned_units_per_cell: int | None = Field(default=None, gt=0)
    looks: int = Field(default=5, ge=1, le=50, description="group_sequential: pre-registered looks")
    end_date: datetime | None = None
    status: Literal["draft", "running", "stopped", "concluded"] = "draft"
    salt: Annotated[str, StringConstraints(max_length=64)] = ""
    promote: Literal["off", "auto", "approval"] = "off"
    allocation: Literal["fixed", "bandit"] = "fixed"
    bandit_min_units: int = Field(default=100, ge=2)
    bandit_period_hours: float = Field(default=24.0, gt=0)


class ExperimentOut(ExperimentIn):
    experiment_id: str


class PlacementIn(Body):
    policy: Id = Field(description="Registered policy the placement decides with by default.")


class PlacementOut(PlacementIn):
    placement: str


class FeedbackActionOut(BaseModel):
    """One entry of an experiment's audit trail (``decisioning.feedback``)."""

    action_id: str
    experiment_id: str
    kind: str
    status: Literal["pending", "applied", "rejected"]
    details: dict[str, Any]
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None


class HoldoutIn(Body):
    share: float = Field(ge=0, le=0.5)
    salt: Id = "holdout"
    retire: Literal["off", "auto", "approval"] = Field(
        default="off",
        description="bank holdout only: retire offers whose measured incremental value does "
        "not cover their contacts",
    )
    revalue: Literal["off", "auto", "approval"] = Field(
        default="off",
        description="bank holdout only: arbitrate with each offer's measured incrementality",
    )


class HoldoutOut(HoldoutIn):
    holdout_id: str
    placement: str | None


class CellStatsOut(Body):
    experiment_id: str
    cell: str
    metric: str
    n: int
    sum: float
    sum_squares: float
    sum_x: float
    sum_x2: float
    sum_xy: float
