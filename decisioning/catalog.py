"""The catalogue: offers, campaigns, budgets and the contact policy, stored as JSON documents.

Workers keep an immutable ``CatalogSnapshot`` in memory and reload it only when the catalogue's
version changes (checked at most every ``refresh_seconds``), so a decision never reads the
catalogue from the database and a change reaches every worker within seconds, without a restart.
"""

from __future__ import annotations

import math
import threading
import time as monotonic
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, time
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine

from bandits import available_policies
from decisioning.domain import (
    CHANNELS,
    Budget,
    ChannelCaps,
    ContactPolicy,
    Offer,
    QuietHours,
    check_id,
)
from decisioning.eligibility import (
    ALREADY_HOLDS_PRODUCT,
    LIFECYCLE_MISMATCH,
    RISK_TOLERANCES,
    CustomerFacts,
    exclusion_reason,
    settled_reason,
)
from decisioning.errors import InvalidInput, NotFound
from decisioning.rules import Rule, RuleCheck, compile_rule
from decisioning.sql import repositories as repo
from decisioning.sql.tables import (
    allocations as allocation_table,
)
from decisioning.sql.tables import (
    budgets,
    contact_policy,
    offers,
    to_units,
)
from decisioning.sql.tables import (
    experiments as experiment_table,
)
from decisioning.sql.tables import (
    holdouts as holdout_table,
)
from decisioning.sql.tables import (
    placements as placement_table,
)
from experiments.assignment import Assigner
from experiments.design import Cell, Experiment, Holdout, apply_change, validate_experiments

T = TypeVar("T")


# --- documents <-> domain values -----------------------------------------------------------------


def _parse_datetime(value: Any, field_name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"not an ISO 8601 date-time: {value!r}", field=field_name) from None


def _from_document(cls: type[T], document: Mapping[str, Any], datetimes: tuple[str, ...]) -> T:
    names = {f.name for f in fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(document) - names)
    if unknown:
        raise InvalidInput("unknown field", field=unknown[0])
    values = dict(document)
    for name in datetimes:
        if name in values:
            values[name] = _parse_datetime(values[name], name)
    for name in ("channels", "lifecycle_stages", "force_offers", "exclude_offers"):
        if name in values and isinstance(values[name], list):
            values[name] = tuple(values[name])
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [n for n in names if n not in values]
        raise InvalidInput(str(exc), field=missing[0] if missing else None) from None


def _to_document(value: Any) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for f in fields(value):
        if not f.init:
            continue
        item = getattr(value, f.name)
        if isinstance(item, datetime):
            item = item.isoformat()
        elif isinstance(item, tuple):
            item = list(item)
        document[f.name] = item
    return document


def offer_from_document(document: Mapping[str, Any]) -> Offer:
    return _from_document(Offer, document, ("valid_from", "valid_until"))


def offer_to_document(offer: Offer) -> dict[str, Any]:
    return _to_document(offer)


def budget_from_document(document: Mapping[str, Any]) -> Budget:
    return _from_document(Budget, document, ("flight_start", "flight_end"))


def budget_to_document(budget: Budget) -> dict[str, Any]:
    return _to_document(budget)


def _parse_clock(value: Any, field_name: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"not a clock time HH:MM: {value!r}", field=field_name) from None


def contact_policy_from_document(document: Mapping[str, Any]) -> ContactPolicy:
    values = dict(document)
    caps = values.pop("channel_caps", {}) or {}
    quiet = values.pop("quiet_hours", {}) or {}
    channel_caps = {}
    for channel, item in caps.items():
        unknown = sorted(set(item) - {"per_day", "per_week"})
        if unknown:
            raise InvalidInput("unknown field", field=f"channel_caps.{channel}.{unknown[0]}")
        channel_caps[channel] = ChannelCaps(**item)
    quiet_hours = {
        channel: QuietHours(
            start=_parse_clock(item.get("start"), f"quiet_hours.{channel}.start"),
            end=_parse_clock(item.get("end"), f"quiet_hours.{channel}.end"),
        )
        for channel, item in quiet.items()
    }
    return _from_document(
        ContactPolicy,
        {**values, "channel_caps": channel_caps, "quiet_hours": quiet_hours},
        (),
    )


def contact_policy_to_document(policy: ContactPolicy) -> dict[str, Any]:
    return {
        "channel_caps": {
            channel: {"per_day": caps.per_day, "per_week": caps.per_week}
            for channel, caps in policy.channel_caps.items()
        },
        "total_per_week": policy.total_per_week,
        "offer_max_contacts": policy.offer_max_contacts,
        "offer_window_days": policy.offer_window_days,
        "refusal_cooldown_days": policy.refusal_cooldown_days,
        "quiet_hours": {
            channel: {
                "start": hours.start.isoformat("minutes"),
                "end": hours.end.isoformat("minutes"),
            }
            for channel, hours in policy.quiet_hours.items()
        },
    }


def experiment_from_document(document: Mapping[str, Any]) -> Experiment:
    """An experiment from its JSON document; errors name the field (``cells[1].weight``)."""
    values = dict(document)
    cells = values.get("cells")
    if not isinstance(cells, list | tuple):
        raise InvalidInput("must be a list of cells", field="cells")
    parsed = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise InvalidInput("must be an object", field=f"cells[{i}]")
        try:
            parsed.append(_from_document(Cell, cell, ()))
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"cells[{i}].{exc.field}") from None
    values["cells"] = tuple(parsed)
    for name in ("guardrail_metrics", "layer_range"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return _from_document(Experiment, values, ("end_date",))


def experiment_to_document(experiment: Experiment) -> dict[str, Any]:
    document = _to_document(experiment)
    document["cells"] = [_to_document(cell) for cell in experiment.cells]
    return document


def holdout_from_document(document: Mapping[str, Any]) -> Holdout:
    return _from_document(Holdout, document, ())


def holdout_id(holdout: Holdout) -> str:
    """Stored under its placement, or ``bank`` for the bank-wide holdout."""
    return holdout.placement or "bank"


# --- the in-memory snapshot ----------------------------------------------------------------------


def action_features(offer: Offer) -> dict[str, float | str]:
    """What a policy sees of an offer (customer features come from the decision's context)."""
    return {
        "offer_id": offer.offer_id,
        "product": offer.product,
        "category": offer.category,
        "risk": float(offer.risk),
        "value": offer.value,
        "cost": offer.cost,
    }


def arbitration_payoff(offer: Offer, shadow_cost: float = 0.0) -> tuple[float, float]:
    """``(scale, offset)``: the offer's priority is ``scale x P(accept) + offset``, that is
    P(accept) x incrementality x value x weight - cost - shadow cost; the policy explores on
    the same payoff.

    Incrementality is the share of the offer's conversions that the holdout shows to be
    incremental (1 until re-valued). ``shadow_cost`` is the sum, over the offer's dual-paced
    budgets, of the budget's price times what the contact charges it: what spending that budget
    here forgoes elsewhere.
    """
    return offer.value * offer.weight * offer.incrementality, -offer.cost - shadow_cost


class CompiledOffer(NamedTuple):
    """An offer as a decision on one of its channels checks it, compiled once per version."""

    offer: Offer
    rule_check: RuleCheck | None
    charges: tuple[tuple[Budget, int], ...]
    """The offer's budgets in lock order, each with what one contact charges it, in units."""
    payoff: tuple[float, float]
    """``arbitration_payoff`` before any shadow cost."""


class RuleGroup(NamedTuple):
    """Offers that share their lifecycle stages and rule: one check decides for all of them."""

    lifecycle_stages: tuple[str, ...]
    rule_check: RuleCheck | None
    offer_ids: tuple[str, ...]


class Screen(NamedTuple):
    """A channel's offers for the customers of one risk tolerance (``settled_reason``)."""

    checked: tuple[CompiledOffer, ...]
    """The offers each decision checks, in catalogue order."""
    settled: dict[str, str]
    """The others, each with the reason that keeps it out whatever the customer and the time."""
    windowed: tuple[CompiledOffer, ...]
    """The checked offers with a validity window: each is checked in full."""
    groups: tuple[RuleGroup, ...]
    """The other checked offers, by lifecycle stages and rule."""
    by_product: dict[str, tuple[str, ...]]
    """The other checked offers, by the product they sell."""
    payoffs: dict[str, tuple[float, float]]
    """Each checked offer's ``CompiledOffer.payoff``, in catalogue order."""

    def eligibility_reasons(self, customer: CustomerFacts, now: datetime) -> dict[str, str]:
        """``exclusion_reason`` of each checked offer that one excludes, one check per group
        of offers instead of one per offer: a decision over 100 offers sharing a few rules
        costs a few rule checks. Applied from the weakest reason to the strongest, so the
        reason kept is the one ``exclusion_reason`` gives first."""
        reasons: dict[str, str] = {}
        for stages, rule_check, offer_ids in self.groups:
            if stages and customer.lifecycle not in stages:
                reasons.update(dict.fromkeys(offer_ids, LIFECYCLE_MISMATCH))
            elif rule_check is not None:
                reason = rule_check(customer.attributes)
                if reason is not None:
                    reasons.update(dict.fromkeys(offer_ids, reason))
        for product in customer.products:
            holding = self.by_product.get(product)
            if holding:
                reasons.update(dict.fromkeys(holding, ALREADY_HOLDS_PRODUCT))
        for offer, rule_check, _, _ in self.windowed:
            reason = exclusion_reason(offer, customer, rule_check, now)
            if reason is not None:
                reasons[offer.offer_id] = reason
        return reasons


@dataclass(frozen=True)
class CatalogSnapshot:
    """Everything a decision needs from the catalogue, indexed for the hot path."""

    version: int
    offers: dict[str, Offer]
    offer_ids_by_channel: dict[str, tuple[str, ...]]
    """Each channel's offers in catalogue order: the order of a decision's explanation."""
    screens: dict[tuple[str, int | None], Screen]
    """Per channel and risk tolerance (``RISK_TOLERANCES``)."""
    budgets: dict[str, Budget]
    charges_by_offer: dict[str, tuple[tuple[Budget, int], ...]]
    contact_policy: ContactPolicy
    action_features: dict[str, dict[str, float | str]]
    experiments: dict[str, Experiment] = field(default_factory=dict)
    assigner: Assigner = field(default_factory=lambda: Assigner([]))
    holdouts: tuple[tuple[str, str | None, Assigner], ...] = ()
    """(holdout id, placement, an assigner of it alone): to record both sides of each holdout."""
    placement_policies: dict[str, str] = field(default_factory=dict)
    """Each placement's default policy, where one was set (or promoted by an experiment)."""
    bandit_periods: dict[str, int] = field(default_factory=dict)
    """Running bandit experiments' current allocation period (their units' weights)."""

    @classmethod
    def load(cls, connection: Connection) -> CatalogSnapshot:
        version = repo.config_version_now(connection)
        offer_list = [
            offer_from_document(d)
            for d in repo.load_documents(connection, offers, "offer_id").values()
        ]
        budget_list = [
            budget_from_document(d)
            for d in repo.load_documents(connection, budgets, "budget_id").values()
        ]
        policy_document = repo.load_document(connection, contact_policy, "id", 1)
        experiment_list = [
            experiment_from_document(d)
            for d in repo.load_documents(connection, experiment_table, "experiment_id").values()
        ]
        holdout_list = [
            holdout_from_document(d)
            for d in repo.load_documents(connection, holdout_table, "holdout_id").values()
        ]
        placement_policies = {
            placement: str(document["policy"])
            for placement, document in repo.load_documents(
                connection, placement_table, "placement"
            ).items()
        }
        return cls.build(
            version,
            offer_list,
            budget_list,
            contact_policy_from_document(policy_document) if policy_document else ContactPolicy(),
            experiment_list,
            holdout_list,
            placement_policies,
            repo.load_documents(connection, allocation_table, "experiment_id"),
        )

    @classmethod
    def build(
        cls,
        version: int,
        offer_list: list[Offer],
        budget_list: list[Budget],
        policy: ContactPolicy,
        experiment_list: Sequence[Experiment] = (),
        holdout_list: Sequence[Holdout] = (),
        placement_policies: Mapping[str, str] | None = None,
        allocations: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> CatalogSnapshot:
        by_channel = {
            channel: tuple(o for o in offer_list if channel in o.channels) for channel in CHANNELS
        }
        charges_by_offer = {
            o.offer_id: tuple(
                (b, to_units(b.charge(o)))
                for b in sorted(
                    (
                        b
                        for b in budget_list
                        if (b.scope == "offer" and b.target_id == o.offer_id)
                        or (b.scope == "campaign" and b.target_id == o.campaign_id)
                    ),
                    key=lambda b: b.budget_id,  # one lock order for every worker
                )
            )
            for o in offer_list
        }
        rule_checks = {o.offer_id: compile_rule(o.rule) for o in offer_list if o.rule is not None}
        bandits = [e for e in experiment_list if e.allocation == "bandit" and e.status == "running"]
        allocated = {e.experiment_id: (allocations or {}).get(e.experiment_id) for e in bandits}
        assigned = [
            with_weights(e, allocated[e.experiment_id]["weights"])  # type: ignore[index]
            if allocated.get(e.experiment_id) is not None
            else e
            for e in experiment_list
        ]
        compiled = {
            channel: [
                CompiledOffer(
                    o,
                    rule_checks.get(o.offer_id),
                    charges_by_offer[o.offer_id],
                    arbitration_payoff(o),
                )
                for o in channel_offers
            ]
            for channel, channel_offers in by_channel.items()
        }
        return cls(
            version=version,
            offers={o.offer_id: o for o in offer_list},
            offer_ids_by_channel={
                channel: tuple(o.offer_id for o in channel_offers)
                for channel, channel_offers in by_channel.items()
            },
            screens={
                (channel, tolerance): _screen(compiled[channel], tolerance)
                for channel in CHANNELS
                for tolerance in RISK_TOLERANCES
            },
            budgets={b.budget_id: b for b in budget_list},
            charges_by_offer=charges_by_offer,
            contact_policy=policy,
            action_features={o.offer_id: action_features(o) for o in offer_list},
            experiments={e.experiment_id: e for e in experiment_list},
            assigner=Assigner(assigned, holdout_list),
            holdouts=tuple((holdout_id(h), h.placement, Assigner([], [h])) for h in holdout_list),
            placement_policies=dict(placement_policies or {}),
            bandit_periods={
                e: int(document["period"]) if document is not None else 0
                for e, document in allocated.items()
            },
        )


def _screen(compiled: Sequence[CompiledOffer], risk_tolerance: int | None) -> Screen:
    settled = {c.offer.offer_id: settled_reason(c.offer, risk_tolerance) for c in compiled}
    checked = tuple(c for c in compiled if settled[c.offer.offer_id] is None)
    windowed: list[CompiledOffer] = []
    groups: dict[tuple[tuple[str, ...], Rule | None], RuleGroup] = {}
    by_product: dict[str, tuple[str, ...]] = {}
    for c in checked:
        offer = c.offer
        if offer.valid_from or offer.valid_until:
            windowed.append(c)
            continue
        key = (offer.lifecycle_stages, offer.rule)
        group = groups.get(key, RuleGroup(offer.lifecycle_stages, c.rule_check, ()))
        groups[key] = group._replace(offer_ids=(*group.offer_ids, offer.offer_id))
        by_product[offer.product] = (*by_product.get(offer.product, ()), offer.offer_id)
    return Screen(
        checked,
        {offer_id: reason for offer_id, reason in settled.items() if reason is not None},
        tuple(windowed),
        tuple(groups.values()),
        by_product,
        {c.offer.offer_id: c.payoff for c in checked},
    )


def with_weights(experiment: Experiment, weights: Mapping[str, float]) -> Experiment:
    """``experiment`` with its cells' weights replaced (a bandit's current allocation)."""
    names = [cell.name for cell in experiment.cells]
    total = math.fsum(weights[name] for name in names)
    shares = [weights[name] / total for name in names]
    shares[-1] = 1.0 - math.fsum(shares[:-1])  # exactly 1 in total, as the design requires
    cells = tuple(
        replace(cell, weight=share) for cell, share in zip(experiment.cells, shares, strict=True)
    )
    return replace(experiment, cells=cells)


class CatalogCache:
    """The worker's snapshot; checks the stored version at most every ``refresh_seconds``."""

    def __init__(self, engine: Engine, refresh_seconds: float) -> None:
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._snapshot: CatalogSnapshot | None = None
        self._checked_at = 0.0

    def current(self) -> CatalogSnapshot:
        snapshot = self._snapshot
        if (
            snapshot is not None
            and monotonic.monotonic() - self._checked_at < self._refresh_seconds
        ):
            return snapshot
        with self._lock:
            if (
                self._snapshot is None
                or monotonic.monotonic() - self._checked_at >= self._refresh_seconds
            ):
                with self._engine.connect() as connection:
                    version = repo.config_version_now(connection)
                    if self._snapshot is None or self._snapshot.version != version:
                        self._snapshot = CatalogSnapshot.load(connection)
                self._checked_at = monotonic.monotonic()
            return self._snapshot

    def invalidate(self) -> None:
        """Force a version check on the next call (after this worker changed the catalogue)."""
        self._checked_at = 0.0


# --- changes (each bumps the version in the same transaction) ------------------------------------


def put_offer(connection: Connection, offer: Offer, now: datetime) -> bool:
    """Create or replace an offer; returns True when it was created."""
    if offer.campaign_id is not None and repo.load_campaign(connection, offer.campaign_id) is None:
        raise InvalidInput(f"unknown campaign {offer.campaign_id!r}", field="campaign_id")
    created = repo.upsert_document(
        connection, offers, "offer_id", offer.offer_id, offer_to_document(offer), now
    )
    repo.bump_config_version(connection)
    return created


def get_offer(connection: Connection, offer_id: str) -> Offer:
    document = repo.load_document(connection, offers, "offer_id", offer_id)
    if document is None:
        raise NotFound(f"no offer {offer_id!r}", field="offer_id")
    return offer_from_document(document)


def list_offers(connection: Connection) -> list[Offer]:
    return [
        offer_from_document(d) for d in repo.load_documents(connection, offers, "offer_id").values()
    ]


def delete_offer(connection: Connection, offer_id: str) -> None:
    if not repo.delete_row(connection, offers, "offer_id", offer_id):
        raise NotFound(f"no offer {offer_id!r}", field="offer_id")
    repo.bump_config_version(connection)


def put_campaign(connection: Connection, campaign_id: str, name: str, now: datetime) -> bool:
    created = repo.upsert_campaign(connection, campaign_id, name, now)
    repo.bump_config_version(connection)
    return created


def put_budget(connection: Connection, budget: Budget, now: datetime) -> bool:
    """Create or replace a budget's settings (its spend so far is kept)."""
    target = (
        repo.load_document(connection, offers, "offer_id", budget.target_id)
        if budget.scope == "offer"
        else repo.load_campaign(connection, budget.target_id)
    )
    if target is None:
        raise InvalidInput(f"unknown {budget.scope} {budget.target_id!r}", field="target_id")
    created = repo.save_budget(
        connection,
        budget.budget_id,
        budget_to_document(budget),
        to_units(budget.amount),
        None if budget.daily_limit is None else to_units(budget.daily_limit),
        now,
    )
    repo.bump_config_version(connection)
    return created


def put_contact_policy(connection: Connection, policy: ContactPolicy, now: datetime) -> None:
    repo.upsert_document(
        connection, contact_policy, "id", 1, contact_policy_to_document(policy), now
    )
    repo.bump_config_version(connection)


def put_experiment(connection: Connection, experiment: Experiment, now: datetime) -> bool:
    """Create or change an experiment; a running design only ramps up or stops."""
    stored = repo.load_document(
        connection, experiment_table, "experiment_id", experiment.experiment_id
    )
    if stored is not None:
        experiment = apply_change(experiment_from_document(stored), experiment)
    others = [
        experiment_from_document(d)
        for key, d in repo.load_documents(connection, experiment_table, "experiment_id").items()
        if key != experiment.experiment_id
    ]
    validate_experiments([*others, experiment])
    for i, cell in enumerate(experiment.cells):
        if cell.policy is not None and cell.policy not in available_policies():
            raise InvalidInput(f"unknown policy {cell.policy!r}", field=f"cells[{i}].policy")
    for i, cell in enumerate(experiment.cells):
        for offer_id in (*cell.force_offers, *cell.exclude_offers):
            if repo.load_document(connection, offers, "offer_id", offer_id) is None:
                raise InvalidInput(f"unknown offer {offer_id!r}", field=f"cells[{i}]")
    repo.upsert_document(
        connection,
        experiment_table,
        "experiment_id",
        experiment.experiment_id,
        experiment_to_document(experiment),
        now,
    )
    repo.bump_config_version(connection)
    return stored is None


def get_experiment(connection: Connection, experiment_id: str) -> Experiment:
    document = repo.load_document(connection, experiment_table, "experiment_id", experiment_id)
    if document is None:
        raise NotFound(f"no experiment {experiment_id!r}", field="experiment_id")
    return experiment_from_document(document)


def list_experiment_documents(connection: Connection) -> list[dict[str, Any]]:
    return list(repo.load_documents(connection, experiment_table, "experiment_id").values())


def put_placement_policy(
    connection: Connection, placement: str, policy: str, now: datetime
) -> None:
    """Make ``policy`` the default of ``placement`` (experiments' cells may still override it)."""
    check_id(placement, "placement")
    if policy not in available_policies():
        raise InvalidInput(f"unknown policy {policy!r}", field="policy")
    repo.upsert_document(
        connection, placement_table, "placement", placement, {"policy": policy}, now
    )
    repo.bump_config_version(connection)


def get_placement_policy(connection: Connection, placement: str) -> str | None:
    document = repo.load_document(connection, placement_table, "placement", placement)
    return None if document is None else str(document["policy"])


def put_holdout(connection: Connection, holdout: Holdout, now: datetime) -> None:
    repo.upsert_document(
        connection, holdout_table, "holdout_id", holdout_id(holdout), _to_document(holdout), now
    )
    repo.bump_config_version(connection)
