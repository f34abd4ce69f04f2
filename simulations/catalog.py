"""The simulated bank's catalogue: the offers it can make and the channels it can make them on.

This is what the engine is allowed to know (ids, values, costs, risk ratings, eligibility hints).
The hidden truth about how customers respond lives in :mod:`simulations.world`.

Money is in EUR. Every number below is a modelling assumption for a mid-sized European retail
bank unless a source is named next to it; the point is plausible orders of magnitude and the right
*ordering* (an RM call costs far more than a push and persuades far more), not calibration.

Examples
--------
>>> from simulations.catalog import DEFAULT_CATALOG
>>> DEFAULT_CATALOG.offer("wealth_fund_r3").risk_level
'R3'
>>> DEFAULT_CATALOG.channel("rm_call").daily_capacity
2000
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

ChannelId = Literal["app_banner", "push", "sms", "email", "call_centre", "rm_call"]
#: Channel ids, in the column order used by every per-channel array in ``simulations``.
CHANNELS: Final[tuple[str, ...]] = get_args(ChannelId)
#: Customer groups and AUM tiers, in the code order used by :mod:`simulations.population`.
GROUPS: Final[tuple[str, ...]] = ("payroll", "pension", "car_owner", "county")
TIERS: Final[tuple[str, ...]] = ("mass", "affluent", "private")
LIFECYCLES: Final[tuple[str, ...]] = ("new", "growing", "mature", "churn_risk")
#: Products a customer can hold, in the column order of ``Population.products``. Every customer
#: holds a current account; the win-back offer's ``retention_bonus`` is not a holding.
PRODUCTS: Final[tuple[str, ...]] = (
    "current_account",
    "credit_card",
    "wealth_fund",
    "time_deposit",
    "consumer_loan",
    "pension_account",
    "car_loan",
    "payroll_bundle",
    "insurance",
)
_RISK_LEVELS: Final[tuple[str, ...]] = ("R1", "R2", "R3", "R4", "R5")


def _check_unit(value: float, name: str) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be within [0, 1], got {value!r}")


def _check_nonnegative(value: float, name: str) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A contact channel.

    Parameters
    ----------
    channel_id : str
        One of :data:`CHANNELS`.
    cost : float
        Bank's cost of one contact, EUR.
    reach : float
        Probability that one contact is seen by a customer who can be reached on the channel,
        before fatigue and ignoring (see :class:`simulations.world.World`).
    fatigue_rate : float
        Per recent contact on this channel, the chance a contact is seen is multiplied by
        ``exp(-fatigue_rate)``; recent contacts decay with the world's half-life.
    daily_capacity : int or None
        Most contacts the bank can make on the channel per day (None: unlimited).
    needs_app : bool
        Only customers using the mobile app can be reached (app banner, push).
    tiers : tuple of str
        AUM tiers the channel serves (relationship managers serve affluent and private only).
    """

    channel_id: str
    cost: float
    reach: float
    fatigue_rate: float
    daily_capacity: int | None = None
    needs_app: bool = False
    tiers: tuple[str, ...] = TIERS

    def __post_init__(self) -> None:
        if self.channel_id not in CHANNELS:
            raise ValueError(f"channel_id must be one of {CHANNELS}, got {self.channel_id!r}")
        _check_nonnegative(self.cost, "cost")
        _check_unit(self.reach, "reach")
        _check_nonnegative(self.fatigue_rate, "fatigue_rate")
        if self.daily_capacity is not None and self.daily_capacity < 0:
            raise ValueError(f"daily_capacity must be >= 0 or None, got {self.daily_capacity}")
        if not self.tiers or any(t not in TIERS for t in self.tiers):
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {self.tiers}")


@dataclass(frozen=True, slots=True)
class EligibilityHint:
    """Bank policy on who may take a product up; the world refuses sales that break it.

    Empty tuples mean "no restriction". Suitability (risk level against risk tolerance) and
    "already holds the product" are checked separately, as the engine does.
    """

    min_age: int = 18
    max_age: int = 120
    min_aum: float = 0.0
    groups: tuple[str, ...] = ()
    lifecycle_stages: tuple[str, ...] = ()
    needs_regular_inflow: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_age <= self.max_age:
            raise ValueError(f"need 0 <= min_age <= max_age, got {self.min_age}, {self.max_age}")
        _check_nonnegative(self.min_aum, "min_aum")
        if any(g not in GROUPS for g in self.groups):
            raise ValueError(f"groups must be a subset of {GROUPS}, got {self.groups}")
        if any(s not in LIFECYCLES for s in self.lifecycle_stages):
            raise ValueError(
                f"lifecycle_stages must be a subset of {LIFECYCLES}, got {self.lifecycle_stages}"
            )


@dataclass(frozen=True, slots=True)
class OfferSpec:
    """One offer of the catalogue.

    Parameters
    ----------
    offer_id, name : str
        Stable id and display name.
    product : str
        Product code; when it is in :data:`PRODUCTS`, holders are not eligible.
    category : str
        Marketing category ("cards", "lending", "investments", ...).
    channels : tuple of str
        Channels the offer may be made on.
    value : float
        Expected net value to the bank if accepted, EUR (lifetime margin, after incentives).
    contact_cost : float
        Offer-specific cost of one contact (creative, compliance), EUR, on top of the channel's.
    risk_level : str
        "R1" (lowest) .. "R5"; suitable only for customers with tolerance C >= R.
    hint : EligibilityHint
        The bank's eligibility policy for the product.
    """

    offer_id: str
    name: str
    product: str
    category: str
    channels: tuple[str, ...]
    value: float
    contact_cost: float
    risk_level: str
    hint: EligibilityHint = EligibilityHint()

    def __post_init__(self) -> None:
        if not self.offer_id or " " in self.offer_id:
            raise ValueError(f"offer_id must be non-empty without spaces, got {self.offer_id!r}")
        if not self.channels or any(c not in CHANNELS for c in self.channels):
            raise ValueError(f"channels must be a non-empty subset of {CHANNELS}")
        _check_nonnegative(self.value, "value")
        _check_nonnegative(self.contact_cost, "contact_cost")
        if self.risk_level not in _RISK_LEVELS:
            raise ValueError(f"risk_level must be one of R1..R5, got {self.risk_level!r}")

    @property
    def risk(self) -> int:
        """The risk level as 1-5."""
        return int(self.risk_level[1])

    def to_document(self, channel: str | None = None) -> dict[str, Any]:
        """The offer as a document for ``decisioning.catalog.offer_from_document``.

        ``cost`` is the offer's contact cost plus, when ``channel`` is given, that channel's cost
        in :data:`DEFAULT_CATALOG`. Only the hints the engine models natively (risk level,
        lifecycle stages) are carried; the rest stay in :attr:`hint`.
        """
        cost = self.contact_cost
        if channel is not None:
            cost += DEFAULT_CATALOG.channel(channel).cost
        return {
            "offer_id": self.offer_id,
            "name": self.name,
            "product": self.product,
            "category": self.category,
            "channels": list(self.channels),
            "value": self.value,
            "cost": round(cost, 6),
            "risk_level": self.risk_level,
            "lifecycle_stages": list(self.hint.lifecycle_stages),
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    """Offers and channels, with lookups by id.

    ``offers`` fixes the offer order (offer index ``k`` is ``offers[k]``); ``channels`` must list
    every id of :data:`CHANNELS` once, in that order.
    """

    offers: tuple[OfferSpec, ...]
    channels: tuple[ChannelSpec, ...]

    def __post_init__(self) -> None:
        ids = [o.offer_id for o in self.offers]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("offers must be non-empty with unique offer_id")
        if tuple(c.channel_id for c in self.channels) != CHANNELS:
            raise ValueError(f"channels must list {CHANNELS} in this order")

    @property
    def offer_ids(self) -> tuple[str, ...]:
        return tuple(o.offer_id for o in self.offers)

    def offer_index(self, offer_id: str) -> int:
        """Position of ``offer_id`` in :attr:`offers`; ValueError naming it when unknown."""
        for k, offer in enumerate(self.offers):
            if offer.offer_id == offer_id:
                return k
        raise ValueError(f"offer_id {offer_id!r} is not in the catalogue")

    def offer(self, offer_id: str) -> OfferSpec:
        return self.offers[self.offer_index(offer_id)]

    def channel_index(self, channel_id: str) -> int:
        if channel_id not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {channel_id!r}")
        return CHANNELS.index(channel_id)

    def channel(self, channel_id: str) -> ChannelSpec:
        return self.channels[self.channel_index(channel_id)]

    def contact_cost(self, offer_id: str, channel_id: str) -> float:
        """Total cost of one contact, EUR: the channel's cost plus the offer's."""
        return self.channel(channel_id).cost + self.offer(offer_id).contact_cost


_DIGITAL: Final = ("app_banner", "push", "sms", "email")

#: Channels. Costs are assumptions: in-app and push have ~zero marginal cost; SMS is priced per
#: message by aggregators (a few euro cents in the EU); an outbound call-centre call is a few
#: minutes of a loaded agent hour; an RM call is a quarter hour or more of a scarce adviser.
#: Reach: SMS is read far more often than e-mail is opened (vendor benchmarks put e-mail open
#: rates for financial services around 20-30%); the exact figures are assumptions. RM capacity:
#: 100 relationship managers making 20 outbound calls a day (assumption).
DEFAULT_CHANNELS: Final[tuple[ChannelSpec, ...]] = (
    ChannelSpec("app_banner", cost=0.001, reach=0.40, fatigue_rate=0.05, needs_app=True),
    ChannelSpec("push", cost=0.002, reach=0.55, fatigue_rate=0.25, needs_app=True),
    ChannelSpec("sms", cost=0.05, reach=0.85, fatigue_rate=0.20),
    ChannelSpec("email", cost=0.005, reach=0.25, fatigue_rate=0.10),
    ChannelSpec("call_centre", cost=4.0, reach=0.45, fatigue_rate=0.40),
    ChannelSpec(
        "rm_call",
        cost=25.0,
        reach=0.80,
        fatigue_rate=0.30,
        daily_capacity=2000,
        tiers=("affluent", "private"),
    ),
)

#: Offers. Values are assumed lifetime net margins; the wealth fund is R3 as in the issue, the
#: pension account (a balanced accumulation plan) R2, deposits, credit and insurance R1 (the R
#: scale grades investment risk; lending is gated by the hints instead).
DEFAULT_OFFERS: Final[tuple[OfferSpec, ...]] = (
    OfferSpec(
        "credit_card_cashback",
        "Cashback credit card",
        "credit_card",
        "cards",
        (*_DIGITAL, "call_centre"),
        value=150.0,
        contact_cost=0.0,
        risk_level="R1",
        hint=EligibilityHint(min_age=18, max_age=75),
    ),
    OfferSpec(
        "wealth_fund_r3",
        "Balanced wealth fund (R3)",
        "wealth_fund",
        "investments",
        ("app_banner", "email", "call_centre", "rm_call"),
        value=600.0,
        contact_cost=0.02,
        risk_level="R3",
        hint=EligibilityHint(min_aum=5_000.0),
    ),
    OfferSpec(
        "time_deposit_12m",
        "12-month time deposit",
        "time_deposit",
        "savings",
        (*_DIGITAL, "rm_call"),
        value=80.0,
        contact_cost=0.0,
        risk_level="R1",
        hint=EligibilityHint(min_aum=1_000.0),
    ),
    OfferSpec(
        "consumer_loan",
        "Personal loan",
        "consumer_loan",
        "lending",
        (*_DIGITAL, "call_centre"),
        value=450.0,
        contact_cost=0.01,
        risk_level="R1",
        hint=EligibilityHint(min_age=21, max_age=70, needs_regular_inflow=True),
    ),
    OfferSpec(
        "pension_account",
        "Private pension plan",
        "pension_account",
        "retirement",
        ("app_banner", "email", "call_centre", "rm_call"),
        value=500.0,
        contact_cost=0.02,
        risk_level="R2",
        hint=EligibilityHint(min_age=18, max_age=62),
    ),
    OfferSpec(
        "car_loan",
        "Car loan",
        "car_loan",
        "lending",
        ("app_banner", "push", "email", "call_centre"),
        value=600.0,
        contact_cost=0.01,
        risk_level="R1",
        hint=EligibilityHint(min_age=21, max_age=70),
    ),
    OfferSpec(
        "payroll_bundle",
        "Payroll cross-sell bundle",
        "payroll_bundle",
        "bundles",
        (*_DIGITAL, "call_centre"),
        value=250.0,
        contact_cost=0.0,
        risk_level="R1",
        hint=EligibilityHint(groups=("payroll",)),
    ),
    OfferSpec(
        "home_insurance",
        "Home and contents insurance",
        "insurance",
        "insurance",
        ("app_banner", "sms", "email", "call_centre"),
        value=120.0,
        contact_cost=0.0,
        risk_level="R1",
    ),
    OfferSpec(
        "winback_bonus",
        "Win-back bonus (EUR 50 on renewed activity)",
        "retention_bonus",
        "retention",
        ("push", "sms", "email", "call_centre", "rm_call"),
        value=200.0,
        contact_cost=0.0,
        risk_level="R1",
        hint=EligibilityHint(lifecycle_stages=("growing", "mature", "churn_risk")),
    ),
)

DEFAULT_CATALOG: Final[Catalog] = Catalog(offers=DEFAULT_OFFERS, channels=DEFAULT_CHANNELS)
