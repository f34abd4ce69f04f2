"""The decision path writes SQLite times as text itself: exactly the text the Core column
type writes, or the comparisons with stored times (``until > :now``) would drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from decisioning.sql.hot_path import _DIALECTS
from decisioning.sql.tables import UTCDateTime

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), ZoneInfo("America/New_York")]
CORE = UTCDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 1, 1),
        timezones=st.sampled_from(ZONES),
    )
)
def test_times_are_written_as_the_core_column_type_writes_them(value: datetime) -> None:
    assert CORE is not None
    assert _DIALECTS["sqlite"].time(value) == CORE(value)
    assert _DIALECTS["sqlite"].time(value) == CORE(value)  # again: the text kept for the next call


@given(
    st.lists(
        st.tuples(
            st.datetimes(
                min_value=datetime(1971, 2, 1),
                max_value=datetime(9998, 1, 1),
                timezones=st.sampled_from(ZONES),
            ),
            st.integers(min_value=0, max_value=30),
        ),
        max_size=100,
    )
)
def test_times_whole_days_apart_and_many_dates_are_written_as_the_core_type_writes_them(
    calls: list[tuple[datetime, int]],
) -> None:
    # Times whole days before now (the same clock), then now, over many dates.
    assert CORE is not None
    for now, days in calls:
        for value in (now - timedelta(days=days), now - timedelta(days=7), now):
            assert _DIALECTS["sqlite"].time(value) == CORE(value)
