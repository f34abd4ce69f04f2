"""Contact policy: frequency caps, refusal cool-downs and quiet hours for one customer.

Takes the customer's recent contacts as counts per cap window (read under the customer's row
lock, so they are exact even with many workers; the database counts them, so a long history
costs no more than a short one) and says how many more contacts the channel allows right now
and which offers are blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from decisioning.domain import ContactPolicy

QUIET_HOURS = "QUIET_HOURS"
CHANNEL_DAILY_CAP = "CHANNEL_DAILY_CAP"
CHANNEL_WEEKLY_CAP = "CHANNEL_WEEKLY_CAP"
TOTAL_WEEKLY_CAP = "TOTAL_WEEKLY_CAP"
OFFER_CAP = "OFFER_CAP"
REFUSAL_COOLDOWN = "REFUSAL_COOLDOWN"
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ContactAllowance:
    """``slots`` more contacts may be made now; ``blocked`` says why none may, if so."""

    slots: int
    blocked: str | None = None
    offer_reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContactWindows:
    """Since when a decision at ``now`` counts contacts: a day, a week, the offer window."""

    day: datetime
    week: datetime
    offer: datetime
    now: datetime

    @classmethod
    def at(cls, policy: ContactPolicy, now: datetime) -> ContactWindows:
        return cls(now - DAY, now - WEEK, now - timedelta(days=policy.offer_window_days), now)


@dataclass(frozen=True, slots=True)
class ContactCounts:
    """A customer's recent contacts as the caps count them (``ContactWindows``), with the
    offers cooling down after a refusal; read under the customer's lock."""

    channel_day: int = 0
    """On the decision's channel within the last day."""
    channel_week: int = 0
    """On the decision's channel within the last week."""
    total_week: int = 0
    """On every channel within the last week."""
    per_offer: dict[str, int] = field(default_factory=dict)
    """Per offer, on every channel, within the policy's offer window."""
    cooling_down: frozenset[str] = frozenset()


def allowance(
    policy: ContactPolicy,
    channel: str,
    counts: ContactCounts,
    local: datetime,
    wanted: int,
) -> ContactAllowance:
    """How many of ``wanted`` contacts the policy allows on ``channel``, given the customer's
    ``counts``; ``local`` is now in the customer's time zone, for quiet hours."""
    quiet = policy.quiet_hours.get(channel)
    if quiet is not None and quiet.contains(local.time()):
        return ContactAllowance(0, QUIET_HOURS)

    slots, blocked = wanted, None
    caps = policy.channel_caps.get(channel)
    limits = [
        (caps.per_day if caps else None, counts.channel_day, CHANNEL_DAILY_CAP),
        (caps.per_week if caps else None, counts.channel_week, CHANNEL_WEEKLY_CAP),
        (policy.total_per_week, counts.total_week, TOTAL_WEEKLY_CAP),
    ]
    for cap, used, reason in limits:
        if cap is not None and cap - used < slots:
            slots = max(0, cap - used)
            blocked = reason if slots == 0 else blocked
    reasons = {offer_id: REFUSAL_COOLDOWN for offer_id in counts.cooling_down}
    if policy.offer_max_contacts is not None:
        for offer_id, count in counts.per_offer.items():
            if count >= policy.offer_max_contacts:
                reasons.setdefault(offer_id, OFFER_CAP)
    return ContactAllowance(slots, blocked, reasons)
