"""Named simulation scenarios: which channels customers visit, how often, under which rules.

A scenario fixes everything but the sizes (customers, days), the seed and the policies, so two
runs of one scenario with one seed are comparable row by row. The scenarios:

* ``policy-quality``: app-banner visits, moderate caps, no budget; value captured as a share of
  the oracle for every registered policy and the two baselines.
* ``tight-budget``: outbound SMS under one money budget for the whole catalogue, paced evenly
  over the flight, at a share of what the visits would spend unconstrained.
* ``cap-pressure``: frequent visits on four channels at any hour against tight per-channel,
  weekly, per-offer caps, a refusal cool-down and quiet hours; the audit must find 0 violations.
* ``drift``: app-banner visits; halfway through, the personal loan loses appeal (credit
  tightens), so a policy must unlearn what it learnt.
* ``load``: many visits per day on the app banner with one policy, timing every decision.
* ``aa-test``: an A/A experiment read back through the engine's report (false positives).
* ``holdout-uplift``: a universal holdout; the engine's reported uplift against the truth.

The last two are studies (``simulations.experiment_studies``): each customer visits once, every
conversion reaches the engine, and ``--runs`` repeats them over seeds.

Baselines run through the real engine like any policy: ``random`` is the engine with
``epsilon = 1`` (uniform among the allowed offers), ``segment-rules`` the "one offer per segment"
practice (:class:`SegmentRulesPolicy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time
from typing import Any, Final, Literal

import numpy as np

from bandits import Actions, Context, Policy, available_policies
from bandits.base import Payoff, check_feedback, greedy_probabilities
from decisioning.domain import ChannelCaps, ContactPolicy, Pacing, QuietHours
from simulations.catalog import DEFAULT_CATALOG, Catalog, OfferSpec
from simulations.world import Drift, World

RANDOM: Final = "random"
SEGMENT_RULES: Final = "segment-rules"
BASELINES: Final[tuple[str, ...]] = (RANDOM, SEGMENT_RULES)
ORACLE: Final = "oracle"
"""Scores with the simulator's true uplift: isolates what pacing does from what learning does."""
#: Longest simulation, days: the simulated calendar starts on 2025-01-06 and must stay in the
#: past so that the HTTP API accepts its events.
MAX_DAYS: Final = 365


class SimulationInputError(ValueError):
    """A simulation was asked for with a bad option; ``option`` names it (e.g. ``--policy``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named set-up of the simulated bank.

    Parameters
    ----------
    name, summary : str
    channels : tuple of str
        Channels visits happen on; each day's visits are split evenly between them.
    visit_rate : float
        Visits per customer per day before the cap (each channel draws distinct customers).
    max_visits_per_day : int
        Cap on the visits simulated per day, whatever the population size (the engine decides
        every visit, so this bounds the run time; the table header states the number used).
    contact_policy : ContactPolicy
    hours : tuple of (float, float)
        Visits happen uniformly between these UTC hours of the day.
    budget_share : float or None
        Default money budget of the whole catalogue as a share of the unconstrained spend (the
        visits times the dearest contact); None: no budget unless ``--budget`` is given.
    drift_offer, drift_at, drift_shift
        From day ``floor(drift_at * days)`` on, ``drift_offer``'s appeal logit moves by
        ``drift_shift`` (no drift when ``drift_offer`` is None).
    study, holdout_share
        ``"aa"`` or ``"holdout"`` for the experiment studies (one visit per customer, read back
        through the report), with the bank holdout's share; None for the policy runs.
    policies : "all", "default" or "oracle"
        Default policies: every registered policy and both baselines, the engine's default, or
        the scorer that knows the true uplift (``ORACLE``).
    pacings : tuple of str
        The budget's pacing in each run; several pacings run every policy once per pacing.
    default_customers, default_days : int
    """

    name: str
    summary: str
    channels: tuple[str, ...]
    visit_rate: float
    max_visits_per_day: int
    contact_policy: ContactPolicy
    hours: tuple[float, float] = (8.0, 22.0)
    budget_share: float | None = None
    drift_offer: str | None = None
    drift_at: float = 0.5
    drift_shift: float = 0.0
    policies: Literal["all", "default", "oracle"] = "all"
    pacings: tuple[Pacing, ...] = ("even",)
    default_customers: int = 20_000
    default_days: int = 30
    study: Literal["aa", "holdout", "policy"] | None = None
    holdout_share: float = 0.0

    def visits_per_day(self, customers: int) -> int:
        """Visits simulated per day for a population of ``customers``."""
        wanted = max(1, round(self.visit_rate * customers))
        return min(wanted, self.max_visits_per_day)

    def drifts(self, days: int) -> tuple[Drift, ...]:
        if self.drift_offer is None:
            return ()
        return (Drift(self.drift_offer, math.floor(self.drift_at * days), self.drift_shift),)


_MODERATE = ContactPolicy(
    channel_caps={"app_banner": ChannelCaps(per_day=1, per_week=3)},
    total_per_week=5,
    offer_max_contacts=2,
    offer_window_days=14,
    refusal_cooldown_days=30,
)
_NIGHT = QuietHours(start=time(21, 0), end=time(8, 0))

_AA_TEST = Scenario(
    name="aa-test",
    summary="an A/A experiment read back through the engine's report",
    channels=("app_banner", "email"),
    visit_rate=0.1,
    max_visits_per_day=2_000,
    contact_policy=_MODERATE,
    policies="default",
    default_customers=6_000,
    default_days=10,
    study="aa",
)

SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario(
            name="policy-quality",
            summary="app-banner visits; value captured vs the oracle, every policy + baselines",
            channels=("app_banner",),
            visit_rate=0.10,
            max_visits_per_day=1_500,
            contact_policy=_MODERATE,
            default_customers=100_000,
        ),
        Scenario(
            name="tight-budget",
            summary="outbound SMS under one tight money budget: greedy, even and dual pacing",
            channels=("sms",),
            visit_rate=0.05,
            max_visits_per_day=1_000,
            contact_policy=ContactPolicy(
                channel_caps={"sms": ChannelCaps(per_day=1, per_week=2)},
                refusal_cooldown_days=30,
            ),
            budget_share=0.4,
            policies="oracle",
            pacings=("asap", "even", "dual"),
        ),
        Scenario(
            name="cap-pressure",
            summary="frequent visits on 4 channels at any hour against tight caps, quiet hours",
            channels=("app_banner", "push", "sms", "email"),
            visit_rate=0.5,
            max_visits_per_day=2_000,
            contact_policy=ContactPolicy(
                channel_caps={
                    "app_banner": ChannelCaps(per_day=1, per_week=3),
                    "push": ChannelCaps(per_day=1, per_week=2),
                    "sms": ChannelCaps(per_day=1, per_week=1),
                    "email": ChannelCaps(per_day=1, per_week=2),
                },
                total_per_week=4,
                offer_max_contacts=1,
                offer_window_days=14,
                refusal_cooldown_days=30,
                quiet_hours={"sms": _NIGHT, "push": _NIGHT},
            ),
            hours=(0.0, 24.0),
            default_customers=2_000,
            default_days=21,
        ),
        Scenario(
            name="drift",
            summary="app-banner visits; the personal loan loses appeal halfway through",
            channels=("app_banner",),
            visit_rate=0.10,
            max_visits_per_day=1_500,
            contact_policy=_MODERATE,
            drift_offer="consumer_loan",
            drift_at=0.5,
            drift_shift=-2.0,
            default_days=40,
        ),
        Scenario(
            name="load",
            summary="many app-banner visits with one policy; decision latency and throughput",
            channels=("app_banner",),
            visit_rate=0.5,
            max_visits_per_day=20_000,
            contact_policy=_MODERATE,
            policies="default",
            default_customers=100_000,
            default_days=3,
        ),
        _AA_TEST,
        replace(
            _AA_TEST,
            name="holdout-uplift",
            summary="a universal holdout: the engine's reported uplift against the truth",
            study="holdout",
            holdout_share=0.5,
        ),
        replace(
            _AA_TEST,
            name="policy-experiment",
            summary="two policies in one experiment with automatic promotion, against the truth",
            channels=("app_banner",),
            default_customers=20_000,
            study="policy",
        ),
    )
}


def scenario_names() -> list[str]:
    """Every scenario name."""
    return list(SCENARIOS)


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ``SimulationInputError`` naming SCENARIO otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise SimulationInputError(
            "SCENARIO", f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}"
        ) from None


def known_policies() -> list[str]:
    """Registered policies (read from the registry now) followed by the baselines."""
    return [*available_policies(), *BASELINES]


def runnable_policies() -> list[str]:
    """What ``--policy`` accepts: the known policies and the true-uplift scorer."""
    return [*known_policies(), ORACLE]


def resolve_policies(
    scenario: Scenario, requested: Sequence[str] | None, default_policy: str
) -> list[str]:
    """The policies to run, in a fixed order; ``all`` means every registered one + baselines.

    Raises ``SimulationInputError`` naming ``--policy`` for an unknown name.
    """
    known = known_policies()
    if not requested:
        return {"all": known, "default": [default_policy], "oracle": [ORACLE]}[scenario.policies]
    names: list[str] = []
    for item in requested:
        for name in (n.strip() for n in item.split(",")):
            if name == "all":
                names.extend(known)
            elif name in runnable_policies():
                names.append(name)
            else:
                choices = ", ".join(runnable_policies())
                raise SimulationInputError(
                    "--policy", f"unknown policy {name!r}; choose from {choices} or all"
                )
    return list(dict.fromkeys(names))


# --- the catalogue as the engine sees it ----------------------------------------------------------


def eligibility_rule(spec: OfferSpec) -> dict[str, Any] | None:
    """The bank's eligibility hint as an engine rule, where the context carries the attribute.

    Age range, minimum AUM and customer groups become rules; "needs a regular inflow" has no
    attribute in the context (``Population.attributes``), so the engine cannot apply it and the
    world refuses those sales instead.
    """
    hint = spec.hint
    rules: list[dict[str, Any]] = []
    if (hint.min_age, hint.max_age) != (18, 120):
        rules.append(
            {
                "attr": "age",
                "op": "between",
                "value": [hint.min_age, hint.max_age],
                "reason": "AGE_OUT_OF_RANGE",
            }
        )
    if hint.min_aum > 0:
        rules.append({"attr": "aum", "op": ">=", "value": hint.min_aum, "reason": "AUM_TOO_LOW"})
    if hint.groups:
        rules.append(
            {"attr": "group", "op": "in", "value": list(hint.groups), "reason": "NOT_IN_GROUP"}
        )
    if not rules:
        return None
    return rules[0] if len(rules) == 1 else {"all": rules}


def offer_documents(
    channels: Sequence[str], catalog: Catalog = DEFAULT_CATALOG
) -> list[dict[str, Any]]:
    """Documents for ``decisioning.catalog.offer_from_document``, one per offer on ``channels``.

    Each offer keeps only the scenario's channels; its ``cost`` is one contact on the dearest of
    them (the engine knows one cost per offer), and the eligibility hint becomes a rule.
    """
    documents = []
    for spec in catalog.offers:
        mine = [c for c in channels if c in spec.channels]
        if not mine:
            continue
        dearest = max(mine, key=lambda c: catalog.channel(c).cost)
        document = spec.to_document(dearest)
        document["channels"] = mine
        rule = eligibility_rule(spec)
        if rule is not None:
            document["eligibility"] = rule
        documents.append(document)
    return documents


# --- the segment-rules baseline ---------------------------------------------------------------

#: "One offer per segment": the offer a marketer assigns to each segment, with the fallbacks
#: used when it may not be made (held, unsuitable, capped, not on the channel), best first.
#: Churn risk overrides the AUM tier. Chosen from the catalogue alone, as a marketer would.
SEGMENT_PLAN: Final[dict[str, tuple[str, ...]]] = {
    "churn_risk": ("winback_bonus", "credit_card_cashback", "time_deposit_12m"),
    "mass": ("credit_card_cashback", "time_deposit_12m", "home_insurance"),
    "affluent": ("wealth_fund_r3", "pension_account", "time_deposit_12m"),
    "private": ("wealth_fund_r3", "time_deposit_12m", "home_insurance"),
}


class FixedRankingPolicy(Policy):
    """A policy that never learns and always makes its best-scored offer (no exploration)."""

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        return greedy_probabilities(self.score_one(context, actions), 0.0, payoff)

    def learn_one(
        self, context: Context, actions: Actions, chosen: str, reward: float, propensity: float
    ) -> None:
        check_feedback(reward, propensity)


class TruthPolicy(FixedRankingPolicy):
    """Scores each offer with its true uplift ``p1 - p0`` for the visiting customer, read from
    the world (``customer_index`` and ``channel`` travel in the context; ``day`` is set by the
    runner), so the engine's priority ``uplift x value - cost`` is the oracle's worth."""

    name = ORACLE

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.day = 0

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        names = list(actions)
        if not names:
            return {}
        index = context.get("customer_index")
        if not isinstance(index, int):
            raise ValueError("the true-uplift scorer needs the customer_index in the context")
        customer = np.full(len(names), index)
        uplift = self.world.uplift(customer, names, str(context["channel"]), day=self.day)
        return {a: float(u) for a, u in zip(names, uplift, strict=True)}


class SegmentRulesPolicy(FixedRankingPolicy):
    """The "one offer per segment" practice as a fixed policy (it never learns).

    ``score_one`` gives the ``j``-th offer of the segment's list (of ``n``) the score
    ``(n - j) / value`` and every other offer 0, so the engine's priority
    ``score x value - cost`` ranks the list in its order ahead of everything else, and the
    policy makes the plan's first allowed offer.
    """

    name = SEGMENT_RULES

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.0,
        plan: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__(seed=seed, floor=floor)
        self.plan: dict[str, tuple[str, ...]] = dict(plan if plan is not None else SEGMENT_PLAN)

    def segment(self, context: Context) -> str:
        if context.get("lifecycle") == "churn_risk" and "churn_risk" in self.plan:
            return "churn_risk"
        return str(context.get("segment", "mass"))

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        ranked = self.plan.get(self.segment(context), ())
        n = len(ranked)
        scores = {}
        for action, features in actions.items():
            value = features.get("value")
            value = float(value) if isinstance(value, int | float) and value > 0 else 1.0
            scores[action] = (n - ranked.index(action)) / value if action in ranked else 0.0
        return scores


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    """A fully resolved request: the scenario, its sizes, seed, policies and options."""

    scenario: Scenario
    customers: int
    days: int
    seed: int
    policies: tuple[str, ...]
    visits_per_day: int
    budget: float | None
    http: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def cheapest_contact(channels: Sequence[str], catalog: Catalog = DEFAULT_CATALOG) -> float:
    """The cost of the cheapest contact the engine can charge on ``channels``, EUR."""
    return min(float(d["cost"]) for d in offer_documents(channels, catalog))


def dearest_contact(channels: Sequence[str], catalog: Catalog = DEFAULT_CATALOG) -> float:
    """The cost of the dearest contact the engine can charge on ``channels``, EUR."""
    return max(float(d["cost"]) for d in offer_documents(channels, catalog))


def build_spec(
    scenario_name: str,
    *,
    customers: int | None,
    days: int | None,
    seed: int,
    policies: Sequence[str] | None,
    default_policy: str,
    visits_per_day: int | None = None,
    budget: float | None = None,
    http: bool = False,
) -> SimulationSpec:
    """Check every option and resolve the defaults; errors name the option."""
    scenario = get_scenario(scenario_name)
    customers = scenario.default_customers if customers is None else customers
    days = scenario.default_days if days is None else days
    if isinstance(customers, bool) or customers < 1:
        raise SimulationInputError("--customers", f"must be >= 1, got {customers}")
    if days < 1 or days > MAX_DAYS:
        raise SimulationInputError("--days", f"must be within [1, {MAX_DAYS}], got {days}")
    if seed < 0:
        raise SimulationInputError("--seed", f"must be >= 0, got {seed}")
    if visits_per_day is not None and visits_per_day < 1:
        raise SimulationInputError("--visits-per-day", f"must be >= 1, got {visits_per_day}")
    visits = scenario.visits_per_day(customers) if visits_per_day is None else visits_per_day
    per_channel = -(-visits // len(scenario.channels))
    if per_channel > customers:
        raise SimulationInputError(
            "--visits-per-day",
            f"{visits} visits over {len(scenario.channels)} channel(s) need at least "
            f"{per_channel} customers, got --customers {customers}",
        )
    if budget is not None:
        if not math.isfinite(budget) or budget <= 0:
            raise SimulationInputError(
                "--budget", f"must be a positive amount in EUR, got {budget}"
            )
        cheapest = cheapest_contact(scenario.channels)
        if budget < cheapest:
            raise SimulationInputError(
                "--budget",
                f"EUR {budget:g} cannot be met: one contact on {', '.join(scenario.channels)} "
                f"costs at least EUR {cheapest:g}",
            )
    elif scenario.budget_share is not None:
        unconstrained = visits * days * dearest_contact(scenario.channels)
        budget = round(scenario.budget_share * unconstrained, 2)
    names = resolve_policies(scenario, policies, default_policy)
    return SimulationSpec(
        scenario=scenario,
        customers=customers,
        days=days,
        seed=seed,
        policies=tuple(names),
        visits_per_day=visits,
        budget=budget,
        http=http,
    )
