"""Contact policy: frequency caps, refusal cool-downs and quiet hours for one customer.

Reads the customer's recent contacts (taken under the customer's row lock, so the counts are
exact even with many workers) and says how many more contacts the channel allows right now and
which offers are blocked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from decisioning.domain import ContactPolicy
from decisioning.sql.repositories import Contact

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


def allowance(
    policy: ContactPolicy,
    channel: str,
    history: Iterable[Contact],
    cooling_down: set[str],
    now: datetime,
    local: datetime,
    wanted: int,
) -> ContactAllowance:
    """How many of ``wanted`` contacts the policy allows on ``channel`` at ``now``.

    ``local`` is ``now`` in the customer's time zone, for quiet hours.
    """
    quiet = policy.quiet_hours.get(channel)
    if quiet is not None and quiet.contains(local.time()):
        return ContactAllowance(0, QUIET_HOURS)

    day_ago, week_ago = now - DAY, now - WEEK
    offer_since = now - timedelta(days=policy.offer_window_days)
    channel_day = channel_week = total_week = 0
    per_offer: dict[str, int] = {}
    for contact in history:
        at = contact.contacted_at
        if at >= week_ago:
            total_week += 1
            if contact.channel == channel:
                channel_week += 1
                if at >= day_ago:
                    channel_day += 1
        if at >= offer_since:
            per_offer[contact.offer_id] = per_offer.get(contact.offer_id, 0) + 1

    slots, blocked = wanted, None
    caps = policy.channel_caps.get(channel)
    limits = [
        (caps.per_day if caps else None, channel_day, CHANNEL_DAILY_CAP),
        (caps.per_week if caps else None, channel_week, CHANNEL_WEEKLY_CAP),
        (policy.total_per_week, total_week, TOTAL_WEEKLY_CAP),
    ]
    for cap, used, reason in limits:
        if cap is not None and cap - used < slots:
            slots = max(0, cap - used)
            blocked = reason if slots == 0 else blocked
    reasons = {offer_id: REFUSAL_COOLDOWN for offer_id in cooling_down}
    if policy.offer_max_contacts is not None:
        for offer_id, count in per_offer.items():
            if count >= policy.offer_max_contacts:
                reasons.setdefault(offer_id, OFFER_CAP)
    return ContactAllowance(slots, blocked, reasons)
