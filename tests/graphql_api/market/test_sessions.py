"""Trading sessions at their edges, at fixed instants (never the wall clock).

A-shares (Asia/Shanghai, UTC+8 all year, a lunch break), US equities
(America/New_York: 09:30 is 14:30 UTC in winter, 13:30 UTC in summer; 2026's
clocks change on Sunday 8 March and Sunday 1 November) and crypto (24/7).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.market.sessions import (
    ALWAYS_OPEN_UTC,
    SessionError,
    TradingSession,
    TradingWindow,
    Weekday,
    parse_hours,
    session_from_json,
)

SHANGHAI = TradingSession.create("Asia/Shanghai", parse_hours("MON-FRI 09:30-11:30 13:00-15:00"))
NEW_YORK = TradingSession.create("America/New_York", parse_hours("MON-FRI 09:30-16:00"))
SECOND = timedelta(seconds=1)


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- A-shares: the open, the lunch break, the close, the weekend -----------------

# Thursday 3 December 2026, 09:30 in Shanghai
SH_OPEN = utc(2026, 12, 3, 1, 30)


def test_the_second_before_the_open_is_closed_and_the_open_itself_is_open() -> None:
    assert not SHANGHAI.is_open(SH_OPEN - SECOND)
    assert SHANGHAI.is_open(SH_OPEN)
    assert SHANGHAI.is_open(SH_OPEN + SECOND)
    assert SHANGHAI.next_open(SH_OPEN - SECOND) == SH_OPEN


def test_the_lunch_break_closes_the_market_but_not_the_trading_day() -> None:
    morning_close = utc(2026, 12, 3, 3, 30)  # 11:30
    afternoon_open = utc(2026, 12, 3, 5, 0)  # 13:00
    day_close = utc(2026, 12, 3, 7, 0)  # 15:00
    assert SHANGHAI.is_open(morning_close - SECOND)
    assert not SHANGHAI.is_open(morning_close)
    assert not SHANGHAI.is_open(afternoon_open - SECOND)
    assert SHANGHAI.is_open(afternoon_open)
    assert SHANGHAI.next_close(SH_OPEN) == morning_close
    lunch = utc(2026, 12, 3, 4, 0)
    assert SHANGHAI.next_open(lunch) == afternoon_open
    assert SHANGHAI.next_close(lunch) == day_close
    # DAY orders survive the break: the day ends at 15:00
    for moment in (SH_OPEN - timedelta(hours=1), SH_OPEN, lunch, day_close - SECOND):
        assert SHANGHAI.day_close(moment) == day_close


def test_the_close_is_exclusive_and_the_next_day_follows() -> None:
    day_close = utc(2026, 12, 3, 7, 0)
    assert SHANGHAI.is_open(day_close - SECOND)
    assert not SHANGHAI.is_open(day_close)
    assert SHANGHAI.next_open(day_close) == utc(2026, 12, 4, 1, 30)  # Friday 09:30
    assert SHANGHAI.day_close(day_close) == utc(2026, 12, 4, 7, 0)


def test_the_weekend_is_closed_from_friday_close_to_monday_open() -> None:
    friday_close = utc(2026, 12, 4, 7, 0)
    monday_open = utc(2026, 12, 7, 1, 30)
    for moment in (friday_close, utc(2026, 12, 5, 3, 0), utc(2026, 12, 6, 3, 0)):
        assert not SHANGHAI.is_open(moment)
        assert SHANGHAI.next_open(moment) == monday_open
        assert SHANGHAI.next_close(moment) == utc(2026, 12, 7, 3, 30)
        assert SHANGHAI.day_close(moment) == utc(2026, 12, 7, 7, 0)
    assert not SHANGHAI.is_open(monday_open - SECOND)
    assert SHANGHAI.is_open(monday_open)


# --- US equities across daylight saving time ---------------------------------


def test_the_new_york_open_follows_the_clock_change_in_spring() -> None:
    # Friday 6 March (EST, UTC-5): 09:30 is 14:30 UTC
    assert not NEW_YORK.is_open(utc(2026, 3, 6, 14, 29, 59))
    assert NEW_YORK.is_open(utc(2026, 3, 6, 14, 30))
    assert NEW_YORK.next_close(utc(2026, 3, 6, 15, 0)) == utc(2026, 3, 6, 21, 0)
    # clocks go forward on Sunday 8 March; Monday 9 March (EDT, UTC-4): 13:30 UTC
    weekend = utc(2026, 3, 7, 12, 0)
    assert NEW_YORK.next_open(weekend) == utc(2026, 3, 9, 13, 30)
    assert not NEW_YORK.is_open(utc(2026, 3, 9, 13, 29, 59))
    assert NEW_YORK.is_open(utc(2026, 3, 9, 13, 30))
    # 14:30 UTC was the open last week; this week the market has been open an hour
    assert NEW_YORK.is_open(utc(2026, 3, 9, 14, 29))
    assert NEW_YORK.day_close(weekend) == utc(2026, 3, 9, 20, 0)
    assert not NEW_YORK.is_open(utc(2026, 3, 9, 20, 0))
    assert NEW_YORK.is_open(utc(2026, 3, 9, 19, 59, 59))


def test_the_new_york_open_follows_the_clock_change_in_autumn() -> None:
    # Friday 30 October (EDT): 13:30 UTC; Monday 2 November (EST): 14:30 UTC
    assert NEW_YORK.is_open(utc(2026, 10, 30, 13, 30))
    assert NEW_YORK.next_open(utc(2026, 10, 30, 21, 0)) == utc(2026, 11, 2, 14, 30)
    assert not NEW_YORK.is_open(utc(2026, 11, 2, 13, 30))
    assert not NEW_YORK.is_open(utc(2026, 11, 2, 14, 29, 59))
    assert NEW_YORK.is_open(utc(2026, 11, 2, 14, 30))
    assert NEW_YORK.day_close(utc(2026, 11, 2, 14, 30)) == utc(2026, 11, 2, 21, 0)


def test_a_window_over_the_missing_hour_of_a_dst_day_keeps_its_length_in_wall_time() -> None:
    # 01:00-04:00 on the spring-forward Sunday lasts two real hours (02:00-03:00 never
    # happens); 02:30 does not exist and is read with the offset before the change.
    night = TradingSession.create("America/New_York", parse_hours("SUN 01:00-04:00 02:30-02:45"))
    assert night.is_open(utc(2026, 3, 8, 6, 0))  # 01:00 EST
    assert night.next_close(utc(2026, 3, 8, 6, 0)) == utc(2026, 3, 8, 8, 0)  # 04:00 EDT
    assert not night.is_open(utc(2026, 3, 8, 8, 0))


# --- around the clock ---------------------------------------------------------


def test_crypto_is_always_open_and_its_days_end_at_midnight_utc() -> None:
    for moment in (utc(2026, 12, 5, 0, 0), utc(2026, 12, 6, 23, 59, 59), utc(2026, 3, 8, 7, 0)):
        assert ALWAYS_OPEN_UTC.is_open(moment)
        assert ALWAYS_OPEN_UTC.next_open(moment) is None
        assert ALWAYS_OPEN_UTC.next_close(moment) is None
    assert ALWAYS_OPEN_UTC.day_close(utc(2026, 12, 5, 0, 0)) == utc(2026, 12, 6, 0, 0)
    assert ALWAYS_OPEN_UTC.day_close(utc(2026, 12, 5, 23, 59)) == utc(2026, 12, 6, 0, 0)


def test_a_24_hour_window_ending_at_a_minute_keeps_the_old_close_utc_minute_meaning() -> None:
    # what migration 0013 makes of session_close_utc_minute = 420
    migrated = session_from_json(
        {
            "timezone": "UTC",
            "windows": [
                {
                    "days": ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"],
                    "open": "07:00",
                    "close": "07:00",
                }
            ],
        }
    )
    assert migrated.is_open(utc(2026, 12, 5, 7, 0)) and migrated.is_open(utc(2026, 12, 5, 6, 59))
    assert migrated.next_close(utc(2026, 12, 5, 7, 0)) is None
    assert migrated.day_close(utc(2026, 12, 5, 6, 59)) == utc(2026, 12, 5, 7, 0)
    assert migrated.day_close(utc(2026, 12, 5, 7, 0)) == utc(2026, 12, 6, 7, 0)


def test_a_close_at_00_00_is_the_next_midnight() -> None:
    late = TradingSession.create("UTC", parse_hours("MON 22:00-00:00"))
    assert late == TradingSession.create("UTC", parse_hours("MON 22:00-00:00"))
    assert late.next_close(utc(2026, 12, 7, 22, 0)) == utc(2026, 12, 8, 0, 0)
    assert late.is_open(utc(2026, 12, 7, 23, 59, 59))


def test_an_overnight_window_closes_on_the_next_day() -> None:
    evening = TradingSession.create("Asia/Shanghai", parse_hours("MON-FRI 21:00-02:30"))
    friday_night = utc(2026, 12, 4, 17, 0)  # Saturday 01:00 in Shanghai
    assert evening.is_open(friday_night)
    assert evening.next_close(friday_night) == utc(2026, 12, 4, 18, 30)
    assert evening.next_open(friday_night) == utc(2026, 12, 7, 13, 0)  # Monday 21:00


# --- definitions ---------------------------------------------------------------


def test_the_stored_and_the_compact_forms_round_trip() -> None:
    assert session_from_json(SHANGHAI.to_json()) == SHANGHAI
    assert SHANGHAI.hours_text() == "MON-FRI 09:30-11:30 13:00-15:00"
    mixed = TradingSession.create("UTC", parse_hours("MON-FRI 09:30-16:00; SAT,SUN 10:00-12:00"))
    assert TradingSession.create("UTC", parse_hours(mixed.hours_text())) == mixed
    assert parse_hours("FRI-MON 10:00-11:00")[0].days == {
        Weekday.FRI,
        Weekday.SAT,
        Weekday.SUN,
        Weekday.MON,
    }


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "hours"),
        ("MON-FRI", "hours"),
        ("MONDAY 09:30-16:00", "hours"),
        ("MON 9:30-16:00", "hours"),
        ("MON 09:60-16:00", "hours"),
        ("MON 24:00-16:00", "hours"),
        ("MON 09:30-24:01", "hours"),
        ("MON 09:30", "hours"),
    ],
)
def test_bad_hours_are_refused_with_the_field(text: str, field: str) -> None:
    with pytest.raises(SessionError) as refused:
        parse_hours(text)
    assert refused.value.field == field


@pytest.mark.parametrize("zone", ["", "Mars/Olympus", "../../etc/passwd", "UTC\x00", "a" * 300])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(SessionError) as refused:
        TradingSession.create(zone, parse_hours("MON 09:00-10:00"))
    assert refused.value.field == "timezone"


def test_a_session_has_windows_and_each_window_days() -> None:
    with pytest.raises(SessionError):
        TradingSession.create("UTC", [])
    with pytest.raises(SessionError) as refused:
        TradingSession.create("UTC", [TradingWindow(frozenset(), 60, 120)])
    assert refused.value.field == "windows.0.days"


# --- the three answers agree ---------------------------------------------------

SESSIONS = [
    SHANGHAI,
    NEW_YORK,
    TradingSession.create("Europe/London", parse_hours("MON-FRI 08:00-16:30")),
    TradingSession.create("Asia/Shanghai", parse_hours("MON-FRI 21:00-02:30 09:00-10:15")),
    TradingSession.create("America/Sao_Paulo", parse_hours("SUN 23:00-24:00; MON 00:00-01:00")),
    TradingSession.create("Australia/Lord_Howe", parse_hours("MON-SUN 01:45-02:15")),
]
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
TICK = timedelta(microseconds=1)


@settings(max_examples=300, deadline=None)
@given(session=st.sampled_from(SESSIONS), at=INSTANTS)
def test_next_open_next_close_and_is_open_agree(session: TradingSession, at: datetime) -> None:
    opens = session.next_open(at)
    closes = session.next_close(at)
    assert opens is not None and closes is not None  # none of these is open all the time
    assert opens > at and closes > at
    # trading starts at next_open: closed the instant before, open from it
    assert session.is_open(opens) and not session.is_open(opens - TICK)
    # and stops at next_close: open the instant before, closed from it
    assert session.is_open(closes - TICK) and not session.is_open(closes)
    # open now exactly when the next close comes before the next open
    assert session.is_open(at) == (closes < opens)
    # a trading day ends after ``at``, at the end of one of its windows
    ends = session.day_close(at)
    assert ends > at and session.is_open(ends - TICK)


@settings(max_examples=100, deadline=None)
@given(at=INSTANTS, step=st.integers(min_value=1, max_value=10**7))
def test_memoised_answers_match_fresh_ones(at: datetime, step: int) -> None:
    # the matcher asks one session about many instants in a row
    fresh = session_from_json(NEW_YORK.to_json())
    later = at + timedelta(seconds=step)
    assert NEW_YORK.is_open(at) == fresh.is_open(at)
    assert NEW_YORK.is_open(later) == session_from_json(NEW_YORK.to_json()).is_open(later)
