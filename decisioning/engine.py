"""The decision pipeline: the composition root the API, the CLI and the simulator all call.

decide(): eligibility -> contact policy -> budgets -> policy scores -> arbitration -> the
policy's exploration on the arbitration's payoff (plus ``epsilon`` uniform) -> one transaction
(lock customer, reserve budgets, add the contacts to the customer's history, log the decision).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Engine

from bandits import Draw, Policy, draw_slate, make_policy
from bandits.base import with_payoff
from decisioning import budgets as budget_checks
from decisioning.catalog import CatalogCache, CatalogSnapshot
from decisioning.contact_policy import ContactWindows, allowance
from decisioning.domain import ID_MAX, ChosenOffer, Decision, DecisionRequest
from decisioning.eligibility import CustomerFacts
from decisioning.errors import InvalidInput
from decisioning.settings import Settings
from decisioning.sql import repositories as repo
from decisioning.sql.hot_path import CustomerState, HotConnections, HotPath
from decisioning.sql.session import make_engine, migrate
from experiments.assignment import Assignment

T = TypeVar("T")
HOLDOUT = "HOLDOUT"
CONTROL_NO_OFFER = "CONTROL_NO_OFFER"
EXPERIMENT_EXCLUDED = "EXPERIMENT_EXCLUDED"
EXPERIMENT_NOT_FORCED = "EXPERIMENT_NOT_FORCED"
HOLDOUT_PREFIX = "holdout:"
"""Each holdout is measured as an experiment ``holdout:<bank|placement>`` with cells
``holdout`` and ``campaign``."""
PERIOD_SEPARATOR = "#"
"""A bandit experiment's units are also measured per allocation period, as ``<id>#<period>``."""
OFFER_PREFIX = "offer:"
"""Each offer's own uplift is measured as an experiment ``offer:<offer_id>`` with cells
``holdout`` (held-out customers the engine would have shown it to) and ``shown``."""
COVARIATE_DAYS = 30  # pre-exposure window of the CUPED covariate
# PostgreSQL's deadlock_detected and serialization_failure: the transaction is safe to retry.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
MAX_ATTEMPTS = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def segment_keys(context: Mapping[str, Any], attributes: Sequence[str]) -> list[str]:
    """``attribute=value`` for each segment attribute the context holds as a short label.

    Numbers with decimals, lists and long strings split nobody: a segment is a category.
    """
    keys = []
    for attribute in attributes:
        value = context.get(attribute)
        if isinstance(value, bool | int | str) and 0 < len(str(value)) <= ID_MAX:
            keys.append(f"{attribute}={value}")
    return list(dict.fromkeys(keys))  # an attribute named twice is one segment


def time_ordered_id(at: datetime) -> str:
    """32 hex digits: the millisecond of ``at`` (48 bits), then 80 random bits, laid out as
    UUIDv7 (RFC 9562) without its version bits. Later decisions sort later: the decision log's
    primary key grows at its end instead of touching a random page per insert, and it orders
    the log by time for the learner's cursor (``log_position``), so no index on ``created_at``
    costs every decision a page of its own."""
    # ``random`` reseeds itself in a forked worker, so workers never share their draws.
    return f"{log_position(at)}{random.getrandbits(80):020x}"


def log_position(at: datetime) -> str:
    """The id prefix of the decisions made in ``at``'s millisecond: every decision made before
    that millisecond has a smaller id, every one made in it or later a larger one."""
    return f"{max(0, (at - EPOCH) // MILLISECOND):012x}"


def retrying(work: Callable[[], T]) -> T:
    """Run the transaction ``work`` again after a deadlock or serialisation failure."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return work()
        except Exception as exc:
            # psycopg errors carry the SQLSTATE themselves, SQLAlchemy's wrap them in ``orig``.
            sqlstate = getattr(exc, "sqlstate", None) or getattr(
                getattr(exc, "orig", None), "sqlstate", None
            )
            if sqlstate not in RETRYABLE_SQLSTATES or attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class PolicyCache:
    """The newest published snapshot of each policy, checked at most every ``refresh_seconds``."""

    def __init__(self, engine: Engine, refresh_seconds: float, seed: int | None) -> None:
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._seed = seed
        self._lock = threading.Lock()
        self._current: dict[str, tuple[Policy, int, float]] = {}

    def current(self, name: str) -> tuple[Policy, int]:
        entry = self._current.get(name)
        if entry is not None and time.monotonic() - entry[2] < self._refresh_seconds:
            return entry[0], entry[1]
        with self._lock:
            with self._engine.connect() as connection:
                version = repo.latest_snapshot_version(connection, name)
                if entry is not None and entry[1] == version:
                    policy = entry[0]
                elif version == 0:
                    policy = make_policy(name, seed=self._seed)
                else:
                    policy = Policy.from_bytes(repo.latest_snapshot(connection, name).state)
            self._current[name] = (policy, version, time.monotonic())
            return policy, version

    def invalidate(self) -> None:
        self._current.clear()


@dataclass
class _Plan:
    """What a decision has worked out before it writes anything: the policy and what it needs
    to give the choice probabilities of any remaining set of offers (``actions``: features,
    ``payoff``: ``arbitration_payoff`` per eligible offer; ``priorities`` is that payoff of each
    offer's score)."""

    explanation: dict[str, str | tuple[float, float]]
    eligible: list[str]
    scores: dict[str, float]
    priorities: dict[str, float]
    slots: int
    policy: Policy
    context: dict[str, Any]
    actions: dict[str, dict[str, float | str]]
    payoff: dict[str, tuple[float, float]]

    def distribution(self, epsilon: float) -> Callable[[Sequence[str]], dict[str, float]]:
        """The policy's probabilities over the offers still to draw from, judged on the
        arbitration's payoff, mixed with ``epsilon`` uniform exploration."""
        # ``remaining`` is a subset of the eligible offers: all of them at the first rank.
        return self.policy.slate_distribution(
            self.context, self.actions, self.payoff, self.priorities, epsilon
        )


class DecisionEngine:
    """Decides, logs and enforces; one per process, safe to share between threads."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.db = engine if engine is not None else make_engine(settings.url)
        self.hot = HotConnections(self.db)
        self.budget_states = budget_checks.BudgetStateCache(settings.refresh_seconds)
        self.catalog = CatalogCache(self.db, settings.refresh_seconds)
        self.policies = PolicyCache(self.db, settings.refresh_seconds, settings.seed)
        self._rng = np.random.default_rng(settings.seed)
        self._rng_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> DecisionEngine:
        """An engine on a migrated database."""
        engine = make_engine(settings.url)
        migrate(engine)
        return cls(settings, engine)

    def group(self) -> AbstractContextManager[None]:
        """Decisions made inside (by this thread) commit together, as one transaction, when
        the block ends: none may be answered before. See ``HotConnections.group``."""
        return self.hot.group()

    def decide(self, request: DecisionRequest, now: datetime | None = None) -> Decision:
        """Choose up to ``request.limit`` offers for one customer and log the decision."""
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        if not 1 <= request.limit <= self.settings.max_limit:
            raise InvalidInput(f"must be within [1, {self.settings.max_limit}]", field="limit")
        catalog = self.catalog.current()

        def work() -> Decision:
            with self.hot.transaction() as hot:
                return record(hot)

        def record(hot: HotPath) -> Decision:
            customer = hot.lock_customer(
                request.customer_id,
                request.channel,
                ContactWindows.at(catalog.contact_policy, now),
            )
            context = {**customer.attributes, **request.context}
            assignment = catalog.assigner.assign_one(
                request.customer_id, request.placement, context
            )
            periods: list[tuple[str, str]] = []
            if catalog.bandit_periods and assignment.memberships:
                assignment, periods = _keep_bandit_cells(
                    hot.unit_cells(request.customer_id), catalog, assignment
                )
            memberships = [(m.experiment_id, m.cell.name) for m in assignment.memberships]
            memberships += periods
            memberships += [
                (
                    HOLDOUT_PREFIX + holdout_id,
                    "holdout" if holdout.held_out(request.customer_id, placement) else "campaign",
                )
                for holdout_id, placement, holdout in catalog.holdouts
                if placement in (None, request.placement)
            ]
            policy_name = assignment.policy or catalog.placement_policies.get(
                request.placement, self.settings.default_policy
            )
            policy, policy_version = self.policies.current(policy_name)
            today = budget_checks.business_day(now, self.settings.business_timezone)
            plan = self._plan(
                hot, catalog, policy, request, customer, context, now, today, assignment
            )
            epsilon = self.settings.epsilon if assignment.epsilon is None else assignment.epsilon
            chosen = self._draw_and_reserve(hot, catalog, plan, now, today, epsilon)
            if any(e.startswith(HOLDOUT_PREFIX) for e, _ in memberships):
                memberships += self._offer_memberships(
                    hot, catalog, policy, request, customer, context, now, today, assignment,
                    chosen,
                )  # fmt: skip
            decision_id = time_ordered_id(now)
            window = timedelta(hours=self.settings.attribution_window_hours)
            # Only a decision with memberships records exposures: most decisions skip this.
            segments = (
                segment_keys(context, self.settings.segment_attributes) if memberships else []
            )
            for experiment_id, cell in memberships:
                hot.record_exposure(
                    experiment_id, request.customer_id, cell, now, COVARIATE_DAYS, segments
                )
                if chosen:
                    hot.add_to_metric(
                        experiment_id, request.customer_id, "contacts", len(chosen), now - window
                    )
            latency_ms = (time.perf_counter() - started) * 1000.0
            hot.log_decision(
                {
                    "decision_id": decision_id,
                    "created_at": now,
                    "customer_id": request.customer_id,
                    "channel": request.channel,
                    "placement": request.placement,
                    "policy_name": policy_name,
                    "policy_version": policy_version,
                    "experiment_id": memberships[0][0] if memberships else None,
                    "cell": memberships[0][1] if memberships else None,
                    "memberships": memberships,
                    "latency_ms": latency_ms,
                    "context": context,
                    "candidates": plan.explanation,
                    "offers": [
                        {
                            "offer_id": o.offer_id,
                            "rank": o.rank,
                            "propensity": o.propensity,
                            "score": o.score,
                            "priority": o.priority,
                            "charges": charges,
                        }
                        for o, charges in chosen
                    ],
                },
                customer.history.with_contacts(
                    request.channel, [offer.offer_id for offer, _ in chosen], now
                )
                if chosen
                else None,
            )
            return Decision(
                decision_id=decision_id,
                created_at=now,
                customer_id=request.customer_id,
                channel=request.channel,
                placement=request.placement,
                offers=tuple(o for o, _ in chosen),
                explanation=plan.explanation,
                policy_name=policy_name,
                policy_version=policy_version,
                latency_ms=latency_ms,
                experiment_id=memberships[0][0] if memberships else None,
                cell=memberships[0][1] if memberships else None,
            )

        return retrying(work)

    def _plan(
        self,
        hot: HotPath,
        catalog: CatalogSnapshot,
        policy: Policy,
        request: DecisionRequest,
        customer_state: CustomerState,
        context: dict[str, Any],
        now: datetime,
        today: str,
        assignment: Assignment,
    ) -> _Plan:
        """What the decision may offer (``today`` is ``now``'s budget day)."""
        customer = CustomerFacts.of(context)
        timezone = context.get("timezone") or self.settings.business_timezone
        try:
            local = now.astimezone(budget_checks.zone(str(timezone)))
        except (KeyError, ValueError):
            raise InvalidInput(
                f"unknown time zone {timezone!r}", field="context.timezone"
            ) from None
        allowed = allowance(
            catalog.contact_policy, request.channel, customer_state.contacts, local, request.limit
        )
        experiment_reason = (
            _experiment_reasons(assignment)
            if assignment.holdout or assignment.memberships
            else None
        )
        # Each offer gets the strongest reason that applies: eligibility, then the experiment,
        # then contact policy (each set over the weaker). The offers the customer's risk
        # tolerance alone keeps out come settled.
        screen = catalog.screens[request.channel, customer.risk_tolerance]
        reasons: dict[str, str] = dict(screen.settled)
        checked = screen.payoffs  # the checked offers, each with its payoff, in catalogue order
        blocked = allowed.blocked
        if experiment_reason is not None:
            for offer_id in checked:
                reason = (
                    experiment_reason(offer_id) or blocked or allowed.offer_reasons.get(offer_id)
                )
                if reason is not None:
                    reasons[offer_id] = reason
        elif blocked is not None:
            reasons.update(dict.fromkeys(checked, blocked))
        else:
            reasons.update((o, r) for o, r in allowed.offer_reasons.items() if o in checked)
        reasons.update(screen.eligibility_reasons(customer, now))  # the strongest, so last
        payoff = {o: p for o, p in checked.items() if o not in reasons}  # of each offer eligible
        budgeted = [c for c in screen.checked if c.charges and c.offer.offer_id in payoff]

        priced: list[str] = []  # offers that pay a dual-paced budget's price
        if budgeted:
            states = self.budget_states.states(
                {budget.budget_id for _, _, charges, _ in budgeted for budget, _ in charges},
                catalog.version,
                hot.budget_states,
            )
            for offer, _, charges, (scale, offset) in budgeted:
                shadow = 0.0
                for budget, units in charges:
                    state = states.get(budget.budget_id)
                    reason = budget_checks.budget_reason(budget, state, units, now, today)
                    if reason is not None:
                        reasons[offer.offer_id] = reason
                        del payoff[offer.offer_id]
                        break
                    shadow += budget_checks.dual_price(budget, state) * budget.charge(offer)
                else:
                    if shadow:
                        payoff[offer.offer_id] = (scale, offset - shadow)
                        priced.append(offer.offer_id)

        actions = {o: catalog.action_features[o] for o in payoff}
        scores = policy.score_one(context, actions) if actions else {}
        priorities = with_payoff(scores, payoff)
        for offer_id in priced:
            if priorities[offer_id] <= 0:
                # Worth less than what its budget's spend would earn elsewhere: not made.
                reasons[offer_id] = budget_checks.BUDGET_PRICE
                del actions[offer_id]
        eligible = list(actions)
        # Catalogue order; each offer then gets its score and priority or, winning, its reason:
        # every offer is scored or excluded, so no placeholder is left.
        explanation: dict[str, Any] = dict.fromkeys(catalog.offer_ids_by_channel[request.channel])
        for offer_id, score in scores.items():
            explanation[offer_id] = (score, priorities[offer_id])
        explanation.update(reasons)
        return _Plan(
            explanation, eligible, scores, priorities, allowed.slots, policy, context, actions,
            payoff,
        )  # fmt: skip

    def _offer_memberships(
        self,
        hot: HotPath,
        catalog: CatalogSnapshot,
        policy: Policy,
        request: DecisionRequest,
        customer: CustomerState,
        context: dict[str, Any],
        now: datetime,
        today: str,
        assignment: Assignment,
        chosen: list[tuple[ChosenOffer, dict[str, int]]],
    ) -> list[tuple[str, str]]:
        """``(offer:<id>, cell)`` for the offers this decision shows, or, for a held-out
        customer, for the offers it would have shown (a ghost draw: the same eligibility, caps,
        scores and exploration, nothing reserved or contacted). Comparing the two cells gives
        each offer's incremental effect among the customers it is actually chosen for."""
        if not assignment.holdout:
            return [(OFFER_PREFIX + offer.offer_id, "shown") for offer, _ in chosen]
        plan = self._plan(
            hot, catalog, policy, request, customer, context, now, today, Assignment()
        )
        ghosts = self._draw(plan, plan.eligible, self.settings.epsilon)
        return [(OFFER_PREFIX + draw.action, "holdout") for draw in ghosts]

    def _draw(self, plan: _Plan, eligible: list[str], epsilon: float) -> list[Draw]:
        with self._rng_lock:
            return draw_slate(plan.distribution(epsilon), eligible, plan.slots, self._rng)

    def _draw_and_reserve(
        self,
        hot: HotPath,
        catalog: CatalogSnapshot,
        plan: _Plan,
        now: datetime,
        today: str,
        epsilon: float,
    ) -> list[tuple[ChosenOffer, dict[str, int]]]:
        """Draw the slate and reserve its budgets; an offer whose reservation loses a race to
        another worker is excluded and the slate is drawn again from the rest."""
        eligible = list(plan.eligible)
        while eligible and plan.slots > 0:
            draws = self._draw(plan, eligible, epsilon)
            reserved: list[tuple[str, int]] = []
            chosen: list[tuple[ChosenOffer, dict[str, int]]] = []
            lost: str | None = None
            for draw in draws:
                offer = catalog.offers[draw.action]
                charges: dict[str, int] = {}
                for budget, units in catalog.charges_by_offer[offer.offer_id]:
                    cap = budget_checks.paced_cap_units(budget, now)
                    if not hot.reserve_budget(budget.budget_id, units, cap, today):
                        self.budget_states.forget(budget.budget_id)  # it was older than it looked
                        lost = offer.offer_id
                        break
                    reserved.append((budget.budget_id, units))
                    charges[budget.budget_id] = units
                if lost is not None:
                    break
                chosen.append(
                    (
                        ChosenOffer(
                            offer_id=offer.offer_id,
                            rank=draw.rank,
                            score=plan.scores[offer.offer_id],
                            priority=plan.priorities[offer.offer_id],
                            propensity=draw.propensity,
                            name=offer.name,
                            product=offer.product,
                            value=offer.value,
                        ),
                        charges,
                    )
                )
            if lost is None:
                if reserved:
                    hot.on_commit.append(partial(self.budget_states.add_spend, reserved, today))
                return chosen
            for budget_id, units in reserved:
                hot.release_budget(budget_id, units)
            plan.explanation[lost] = budget_checks.BUDGET_EXHAUSTED
            eligible.remove(lost)
        return []


def _keep_bandit_cells(
    unit_cells: dict[str, str], catalog: CatalogSnapshot, assignment: Assignment
) -> tuple[Assignment, list[tuple[str, str]]]:
    """Keep a unit in the cell it first got in each bandit experiment, whatever the weights
    now, and add its period's membership ``<experiment>#<period>`` (the stratum the analysis
    compares within)."""
    memberships = []
    periods = []
    for membership in assignment.memberships:
        experiment_id = membership.experiment_id
        if experiment_id in catalog.bandit_periods:
            name = unit_cells.get(experiment_id, membership.cell.name)
            cells = catalog.experiments[experiment_id].cells
            membership = replace(membership, cell=next(c for c in cells if c.name == name))
            period = next(
                (e for e in unit_cells if e.startswith(experiment_id + PERIOD_SEPARATOR)),
                f"{experiment_id}{PERIOD_SEPARATOR}{catalog.bandit_periods[experiment_id]}",
            )
            periods.append((period, name))
        memberships.append(membership)
    return replace(assignment, memberships=tuple(memberships)), periods


def _experiment_reasons(assignment: Assignment) -> Callable[[str], str | None]:
    """Why the customer's holdout or experiment cells keep an offer out, if they do."""
    blocked = HOLDOUT if assignment.holdout else CONTROL_NO_OFFER if assignment.no_offer else None
    excluded = frozenset(assignment.exclude_offers)
    forced = frozenset(assignment.force_offers)

    def reason(offer_id: str) -> str | None:
        if blocked is not None:
            return blocked
        if offer_id in excluded:
            return EXPERIMENT_EXCLUDED
        if forced and offer_id not in forced:
            return EXPERIMENT_NOT_FORCED
        return None

    return reason
