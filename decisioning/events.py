"""Outcome events: validated, joined to their decision, stored once by ``event_id``.

A replayed event is acknowledged and not stored again. A refusal starts the offer's cool-down
for the customer. The batch is one durable transaction: all of it is stored, or none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from decisioning.domain import (
    EVENT_TYPES,
    ContactPolicy,
    Event,
    Offer,
    check_aware,
    check_id,
    check_number,
)
from decisioning.engine import OFFER_PREFIX
from decisioning.errors import InvalidInput
from decisioning.settings import DEFAULT_ATTRIBUTION_HOURS
from decisioning.sql import repositories as repo
from decisioning.sql.hot_path import HotPath
from decisioning.sql.tables import from_units, to_units

MAX_BATCH = 1000
# event type -> (experiment metric, increment; None: the event's value)
METRIC_CHANGES: dict[str, tuple[tuple[str, float | None], ...]] = {
    "click": (("clicks", 1.0),),
    "accept": (("accepts", 1.0),),
    "convert": (("conversion", 1.0), ("value", None)),
}
FUTURE_SKEW = timedelta(minutes=5)
#: What a customer's own outcome (no decision) may be: offers' clicks, accepts and refusals
#: belong to a decision.
CUSTOMER_EVENT_TYPES: tuple[str, ...] = ("convert",)


@dataclass(frozen=True, slots=True)
class EventReceipt:
    """``stored`` events were new; ``duplicates`` were received before or twice in the batch."""

    stored: int
    duplicates: int


def record_events(
    connection: Connection,
    batch: Sequence[Event],
    policy: ContactPolicy,
    now: datetime,
    window: timedelta = timedelta(hours=DEFAULT_ATTRIBUTION_HOURS),
    offers: Mapping[str, Offer] | None = None,
) -> EventReceipt:
    """Validate and store ``batch``; raises ``InvalidInput`` naming ``events[i].field``.

    New events move the metrics of every experiment (and holdout) their decision ran in, when
    they happen within ``window`` of the unit's first exposure. An offer's own uplift measure
    (``offer:<id>``) moves only with outcomes of that offer, or customer outcomes naming its
    product (looked up in ``offers``, the catalogue).
    """
    if not 1 <= len(batch) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds 1 to {MAX_BATCH} events", field="events")
    first_seen: dict[str, int] = {}
    for i, event in enumerate(batch):
        check_id(event.event_id, f"events[{i}].event_id")
        if event.type not in EVENT_TYPES:
            raise InvalidInput(
                f"must be one of {', '.join(EVENT_TYPES)}", field=f"events[{i}].type"
            )
        check_number(event.value, f"events[{i}].value")
        check_aware(event.occurred_at, f"events[{i}].occurred_at")
        if event.occurred_at > now + FUTURE_SKEW:
            raise InvalidInput("lies in the future", field=f"events[{i}].occurred_at")
        first_seen.setdefault(event.event_id, i)

    decisions = repo.decision_rows(
        connection, {e.decision_id for e in batch if e.decision_id is not None}
    )
    rows: list[dict[str, Any]] = []
    for i, event in enumerate(batch):
        customer_id = _customer_of(event, i, decisions)
        if first_seen[event.event_id] == i:
            rows.append(
                {
                    "event_id": event.event_id,
                    "decision_id": event.decision_id,
                    "offer_id": event.offer_id,
                    "customer_id": customer_id,
                    "product": event.product,
                    "type": event.type,
                    "value_units": to_units(event.value),
                    "occurred_at": event.occurred_at,
                    "received_at": now,
                }
            )
    stored = repo.insert_events(connection, rows)
    # A decision's outcome moves the experiments it ran in; a customer's outcome, every
    # experiment (and holdout) the customer was exposed in.
    exposed = repo.exposed_experiments(
        connection, {r["customer_id"] for r in rows if r["decision_id"] is None}
    )
    hot = HotPath(connection.connection.driver_connection, connection.dialect.name)
    for row in rows:
        changes = METRIC_CHANGES.get(row["type"], ())
        if row["event_id"] not in stored or not changes:
            continue
        if row["decision_id"] is None:
            candidates = exposed.get(row["customer_id"], [])
        else:
            candidates = [e for e, _ in decisions[row["decision_id"]].memberships or ()]
        experiment_ids = [e for e in candidates if _measures(e, row, offers or {})]
        value = from_units(row["value_units"])
        for experiment_id in experiment_ids:
            for metric, increment in changes:
                hot.add_to_metric(
                    experiment_id,
                    row["customer_id"],
                    metric,
                    value if increment is None else increment,
                    row["occurred_at"] - window,
                )
    if policy.refusal_cooldown_days > 0:
        cooldown = timedelta(days=policy.refusal_cooldown_days)
        for row in rows:
            if row["type"] == "refuse" and row["event_id"] in stored:
                repo.start_cooldown(
                    connection, row["customer_id"], row["offer_id"], row["occurred_at"] + cooldown
                )
    return EventReceipt(stored=len(stored), duplicates=len(batch) - len(stored))


def _measures(experiment_id: str, row: Mapping[str, Any], offers: Mapping[str, Offer]) -> bool:
    """Whether the stored event ``row`` counts in ``experiment_id``'s metrics."""
    if not experiment_id.startswith(OFFER_PREFIX):
        return True
    offer_id = experiment_id.removeprefix(OFFER_PREFIX)
    if row["decision_id"] is not None:
        return bool(row["offer_id"] == offer_id)
    offer = offers.get(offer_id)
    return offer is not None and row["product"] == offer.product


def _customer_of(event: Event, i: int, decisions: dict[str, Any]) -> str:
    """The customer an event is about; raises ``InvalidInput`` naming ``events[i].field``."""
    if event.decision_id is None:
        if event.offer_id is not None:
            raise InvalidInput("an offer's outcome needs its decision",
                               field=f"events[{i}].decision_id")  # fmt: skip
        if event.customer_id is None:
            raise InvalidInput(
                "give decision_id and offer_id, or customer_id for a customer's own outcome",
                field=f"events[{i}].customer_id",
            )
        check_id(event.customer_id, f"events[{i}].customer_id")
        if event.product is not None:
            check_id(event.product, f"events[{i}].product")
        if event.type not in CUSTOMER_EVENT_TYPES:
            raise InvalidInput(
                f"a customer outcome (no decision) is one of {', '.join(CUSTOMER_EVENT_TYPES)}",
                field=f"events[{i}].type",
            )
        return event.customer_id
    found = decisions.get(event.decision_id)
    if found is None:
        raise InvalidInput(
            f"unknown decision {event.decision_id!r}", field=f"events[{i}].decision_id"
        )
    if event.offer_id is None or all(o["offer_id"] != event.offer_id for o in found.offers):
        raise InvalidInput(
            f"offer {event.offer_id!r} was not chosen in decision {event.decision_id!r}",
            field=f"events[{i}].offer_id",
        )
    if event.product is not None:
        raise InvalidInput("an offer's outcome is about the offer's product already",
                           field=f"events[{i}].product")  # fmt: skip
    if event.customer_id is not None and event.customer_id != found.customer_id:
        raise InvalidInput(
            f"decision {event.decision_id!r} was for another customer",
            field=f"events[{i}].customer_id",
        )
    return str(found.customer_id)
