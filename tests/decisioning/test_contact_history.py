"""A customer's contact history keeps what any admissible policy counts: the caps it allows are
those the full list of contacts allows, for the policy set now or any set later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning import contact_policy
from decisioning.contact_policy import (
    ContactCounts,
    ContactHistory,
    ContactWindows,
    allowance,
    microseconds,
)
from decisioning.domain import (
    MAX_CHANNEL_CAP,
    MAX_OFFER_CAP,
    MAX_OFFER_WINDOW_DAYS,
    ChannelCaps,
    ContactPolicy,
)
from decisioning.errors import InvalidInput

START = datetime(2026, 1, 1, tzinfo=UTC)
CHANNELS = ("sms", "push", "email")
OFFERS = ("loan", "card", "fund", "deposit")
SMALL_CHANNEL_CAP, SMALL_OFFER_CAP = 6, 4
"""Bounds small enough for a test's few contacts to reach them."""

contacts = st.lists(
    st.tuples(
        st.integers(0, 3 * 24 * 3600),  # seconds since the previous contact
        st.sampled_from(CHANNELS),
        st.lists(st.sampled_from(OFFERS), min_size=1, max_size=3, unique=True),
    ),
    max_size=60,
)
caps = st.none() | st.integers(0, SMALL_CHANNEL_CAP)
policies = st.builds(
    ContactPolicy,
    channel_caps=st.dictionaries(st.sampled_from(CHANNELS), st.builds(ChannelCaps, caps, caps)),
    total_per_week=caps,
    offer_max_contacts=st.none() | st.integers(0, SMALL_OFFER_CAP),
    offer_window_days=st.integers(1, 60),
)


def counts_of_every_contact(
    made: list[tuple[datetime, str, str]], channel: str, policy: ContactPolicy, now: datetime
) -> ContactCounts:
    """The counts straight from the definitions: every contact made, none dropped, each window
    starting a day, a week, the offer window before ``now``."""
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    per_offer: dict[str, int] = {}
    for at, _, offer_id in made:
        if now - timedelta(days=policy.offer_window_days) <= at:
            per_offer[offer_id] = per_offer.get(offer_id, 0) + 1
    return ContactCounts(
        sum(1 for at, c, _ in made if c == channel and day <= at),
        sum(1 for at, c, _ in made if c == channel and week <= at),
        sum(1 for at, _, _ in made if week <= at),
        per_offer,
    )


@settings(max_examples=300, deadline=None)
@given(contacts, policies, st.integers(0, 90 * 24), st.sampled_from(CHANNELS), st.integers(1, 5))
def test_a_history_allows_what_every_contact_made_allows(
    made: list[tuple[int, str, list[str]]],
    policy: ContactPolicy,
    hours_after: int,
    channel: str,
    wanted: int,
) -> None:
    # The policy is drawn independently of the contacts: as if set after they were made.
    history, every, at = ContactHistory(), [], START
    with (
        mock.patch.object(contact_policy, "MAX_CHANNEL_CAP", SMALL_CHANNEL_CAP),
        mock.patch.object(contact_policy, "MAX_OFFER_CAP", SMALL_OFFER_CAP),
    ):
        for gap, contact_channel, offer_ids in made:
            at += timedelta(seconds=gap)
            history = history.with_contacts(contact_channel, offer_ids, at)
            every += [(at, contact_channel, offer_id) for offer_id in offer_ids]
        assert sum(map(len, history.channels.values())) <= len(CHANNELS) * SMALL_CHANNEL_CAP
        assert all(len(times) <= SMALL_OFFER_CAP for times in history.offers.values())
    windows = ContactWindows.at(policy, at + timedelta(hours=hours_after))
    every_count = counts_of_every_contact(every, channel, policy, windows.now)
    expected = allowance(policy, channel, every_count, windows.now, wanted)
    assert allowance(policy, channel, history.counts(channel, windows), windows.now, wanted) == (
        expected
    )


def test_counts_are_exact_within_the_bounds_and_windows_include_their_start() -> None:
    history = ContactHistory()
    for days_ago, channel, offer_ids in [(8, "sms", ["loan"]), (3, "sms", ["loan", "card"])]:
        history = history.with_contacts(channel, offer_ids, START - timedelta(days=days_ago))
    history = history.with_contacts("push", ["card"], START - timedelta(days=1))
    windows = ContactWindows.at(ContactPolicy(offer_window_days=8), START)
    assert history.counts("sms", windows, frozenset({"fund"})) == ContactCounts(
        channel_day=0,
        channel_week=2,
        total_week=3,
        per_offer={"loan": 2, "card": 2},  # the 8-day-old contact starts the offer window
        cooling_down=frozenset({"fund"}),
    )
    assert history.counts("push", windows).channel_day == 1  # exactly a day ago: in the window
    earlier = history.with_contacts("push", ["loan"], START - timedelta(days=1, microseconds=1))
    assert earlier.counts("push", windows).channel_day == 1  # a microsecond before: outside


def test_a_history_drops_what_no_admissible_policy_counts() -> None:
    """A channel's contacts are kept a week (and a day of clock skew), an offer's for the
    longest offer window; of each, the newest up to the largest cap a policy may set."""
    old = ContactHistory().with_contacts("sms", ["loan"], START)
    week_later = START + timedelta(days=8, seconds=1)
    history = old.with_contacts("push", ["card"], week_later)
    assert history.channels == {"push": [microseconds(week_later)]}  # sms: nothing to count
    assert set(history.offers) == {"loan", "card"}
    history = history.with_contacts("sms", ["loan"], week_later + timedelta(seconds=1))
    assert history.offers["loan"] == [microseconds(START), microseconds(week_later) + 1_000_000]
    years_later = START + timedelta(days=8 + MAX_OFFER_WINDOW_DAYS + 2)
    assert history.with_contacts("email", [], years_later) == ContactHistory()

    busy = ContactHistory()
    for minute in range(MAX_CHANNEL_CAP + 5):
        busy = busy.with_contacts("sms", ["loan"], START + timedelta(minutes=minute))
    assert len(busy.channels["sms"]) == MAX_CHANNEL_CAP
    assert len(busy.offers["loan"]) == MAX_OFFER_CAP
    assert busy.offers["loan"][-1] == microseconds(START + timedelta(minutes=MAX_CHANNEL_CAP + 4))


def test_a_contact_dated_before_the_last_stays_in_time_order() -> None:
    """Workers' clocks differ by milliseconds: a history written by a later clock first."""
    history = ContactHistory().with_contacts("sms", ["loan"], START + timedelta(seconds=1))
    history = history.with_contacts("sms", ["loan"], START)
    assert history.channels["sms"] == sorted(history.channels["sms"])
    assert ContactHistory.from_json(history.to_json()) == history


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1)))
def test_microseconds_are_exact(value: datetime) -> None:
    aware = value.replace(tzinfo=UTC)
    assert microseconds(aware) == (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (
            {"channel_caps": {"sms": ChannelCaps(per_day=MAX_CHANNEL_CAP + 1)}},
            "channel_caps.sms.per_day",
        ),
        ({"total_per_week": MAX_CHANNEL_CAP + 1}, "total_per_week"),
        ({"offer_max_contacts": MAX_OFFER_CAP + 1}, "offer_max_contacts"),
        ({"offer_window_days": MAX_OFFER_WINDOW_DAYS + 1}, "offer_window_days"),
    ],
)
def test_a_policy_beyond_what_histories_keep_is_refused(policy: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        ContactPolicy(**policy)
    assert refused.value.field == field
