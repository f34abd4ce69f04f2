"""Contact policy: frequency caps, refusal cool-downs and quiet hours for one customer.

The customer's recent contacts live in their profile row as a ``ContactHistory`` (read and
rewritten under the customer's row lock, so the counts are exact even with many workers) and
are counted per cap window; ``allowance`` then says how many more contacts the channel allows
right now and which offers are blocked.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import orjson

from decisioning.domain import MAX_CHANNEL_CAP, MAX_OFFER_CAP, MAX_OFFER_WINDOW_DAYS, ContactPolicy

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
DAY_MICROSECONDS = DAY // MICROSECOND
WEEK_MICROSECONDS = WEEK // MICROSECOND
# A worker whose clock runs behind another's counts from a little earlier than the one that
# pruned: a day's margin keeps what it may still count.
CHANNEL_HORIZON = WEEK_MICROSECONDS + DAY_MICROSECONDS
"""The longest channel window (a week), in microseconds."""
OFFER_HORIZON = (MAX_OFFER_WINDOW_DAYS + 1) * DAY_MICROSECONDS
"""The longest offer window any policy may set, in microseconds."""


def microseconds(at: datetime) -> int:
    """``at`` (time-zone aware) as microseconds since the Unix epoch, exactly (a float's
    timestamp loses microseconds from the 23rd century on)."""
    return (at - EPOCH) // MICROSECOND


class ContactWindows(NamedTuple):
    """Since when a decision at ``now`` counts contacts, in microseconds since the epoch as a
    ``ContactHistory`` holds them: a day, a week, the offer window (a named tuple: one is made
    per decision, and the times are converted once, not once per count)."""

    now: datetime
    day: int
    week: int
    offer: int

    @classmethod
    def at(cls, policy: ContactPolicy, now: datetime) -> ContactWindows:
        at = microseconds(now)
        offer_window = policy.offer_window_days * DAY_MICROSECONDS
        return cls(now, at - DAY_MICROSECONDS, at - WEEK_MICROSECONDS, at - offer_window)


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """A customer's recent contacts: per channel and per offer, the times (microseconds since
    the epoch, ascending) of the most recent ones.

    It keeps what any policy the validation admits needs, not only the current one, so that a
    cap raised or a window lengthened later still counts every contact it covers: per channel,
    the newest ``MAX_CHANNEL_CAP`` within a week; per offer, the newest ``MAX_OFFER_CAP``
    within ``MAX_OFFER_WINDOW_DAYS``. Counts from it are exact below those bounds, and at least
    the bound above them, which blocks any cap the validation admits; the total over channels
    likewise. So the history is bounded by the customer's traffic and those limits, not by their
    age as a customer, and a decision reads one row instead of counting a contacts table.
    """

    channels: dict[str, list[int]] = field(default_factory=dict)
    offers: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | bytes | None) -> ContactHistory:
        if not text:
            return cls()
        document = orjson.loads(text)
        return cls(document["channels"], document["offers"])

    def to_json(self) -> str:
        return orjson.dumps({"channels": self.channels, "offers": self.offers}).decode()

    def counts(
        self, channel: str, windows: ContactWindows, cooling_down: frozenset[str] = frozenset()
    ) -> ContactCounts:
        """The contacts the caps count at ``windows.now`` (a window includes its start)."""
        week = windows.week
        on_channel = self.channels.get(channel, [])
        total_week = 0
        for times in self.channels.values():
            total_week += len(times) - bisect_left(times, week)
        since = windows.offer
        per_offer = {}
        for offer_id, times in self.offers.items():
            count = len(times) - bisect_left(times, since)
            if count:
                per_offer[offer_id] = count
        return ContactCounts(
            len(on_channel) - bisect_left(on_channel, windows.day),
            len(on_channel) - bisect_left(on_channel, week),
            total_week,
            per_offer,
            cooling_down,
        )

    def with_contacts(self, channel: str, offer_ids: Iterable[str], at: datetime) -> ContactHistory:
        """This history with one contact per offer on ``channel`` at ``at``. What no admissible
        cap can count at ``at`` or later goes: the lists added to lose it, and a list that holds
        nothing else goes whole (another keeps at most its bound until then, as counting reads
        only its windows)."""
        now = microseconds(at)
        channel_since, offer_since = now - CHANNEL_HORIZON, now - OFFER_HORIZON
        channels = {n: times for n, times in self.channels.items() if times[-1] >= channel_since}
        offers = {o: times for o, times in self.offers.items() if times[-1] >= offer_since}
        for offer_id in offer_ids:
            channels[channel] = _added(
                channels.get(channel, []), now, channel_since, MAX_CHANNEL_CAP
            )
            offers[offer_id] = _added(offers.get(offer_id, []), now, offer_since, MAX_OFFER_CAP)
        return ContactHistory(channels, offers)


def _added(times: list[int], at: int, since: int, most: int) -> list[int]:
    """A new list: the newest ``most`` of ``times`` and ``at`` that are at or after ``since``."""
    kept = times[bisect_left(times, since) :]
    insort(kept, at)  # a decision dated before others (another worker's clock) stays in order
    return kept[-most:]


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
