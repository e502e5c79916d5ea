"""What a market-data value from outside may be: its time window and its digits.

Shared by every way ticks and daily bars come in (``ingestTicks``, ``importBars``
and the CSV imports), so they refuse the same values with the same codes:

- a time older than the configured age (``MAX_TICK_AGE_YEARS`` for ticks,
  ``MAX_BAR_AGE_YEARS`` for daily bars) or later than the future allowance
  (``MAX_TICK_FUTURE_SECONDS``) is ``OUT_OF_RANGE``. Year-999 and year-9999
  stamps are typos or bugs upstream, never history; an epoch-zero (1970) tick
  is caught by the default tick age too;
- a number with more than :data:`DECIMAL_INTEGER_DIGITS` digits before the
  point is ``OUT_OF_RANGE``, with more than :data:`DECIMAL_FRACTION_DIGITS`
  after it ``INVALID_PRECISION``: beyond those the stores would round it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from graphql_api.platform.errors import ErrorCode, UserError
from storage.types import DECIMAL_FRACTION_DIGITS, DECIMAL_INTEGER_DIGITS, decimal_digits

__all__ = [
    "DECIMAL_FRACTION_DIGITS",
    "DECIMAL_INTEGER_DIGITS",
    "TimeWindow",
    "check_digits",
    "years_before",
]


def years_before(now: datetime, years: int) -> datetime:
    """The same moment ``years`` calendar years earlier (29 February becomes the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The times a value may carry, fixed at one ``now`` for a whole batch or file.

    Parameters:
    oldest: the earliest time allowed (inclusive).
    newest: the latest time allowed (inclusive): now plus the future allowance.
    """

    oldest: datetime
    newest: datetime

    @classmethod
    def around(cls, now: datetime, max_age_years: int, max_future: timedelta) -> TimeWindow:
        return cls(years_before(now, max_age_years), now + max_future)

    def check_time(self, moment: datetime, field: str) -> UserError | None:
        """``moment`` must be aware. Comparing never converts it, so no offset can overflow."""
        if moment < self.oldest:
            return UserError(
                field,
                ErrorCode.OUT_OF_RANGE,
                f"time {moment.isoformat()} is before {self.oldest.date().isoformat()}, "
                "the oldest accepted",
            )
        if moment > self.newest:
            return UserError(field, ErrorCode.OUT_OF_RANGE, "time is in the future")
        return None

    def check_day(self, day: date, field: str) -> UserError | None:
        """A daily bar is dated by the day whose 00:00 UTC starts it."""
        start = datetime.combine(day, time(0), tzinfo=UTC)
        if start < datetime.combine(self.oldest.date(), time(0), tzinfo=UTC):
            return UserError(
                field,
                ErrorCode.OUT_OF_RANGE,
                f"date {day.isoformat()} is before {self.oldest.date().isoformat()}, "
                "the oldest accepted",
            )
        if start > self.newest:
            message = f"date {day.isoformat()} is in the future"
            return UserError(field, ErrorCode.OUT_OF_RANGE, message)
        return None


def check_digits(value: Decimal, field: str, name: str) -> UserError | None:
    """Refuse a finite ``value`` the stores could not keep exactly (see the module docstring)."""
    integer, fraction = decimal_digits(value)
    if integer > DECIMAL_INTEGER_DIGITS:
        return UserError(
            field,
            ErrorCode.OUT_OF_RANGE,
            f"{name} has {integer} digits before the point; at most {DECIMAL_INTEGER_DIGITS}",
        )
    if fraction > DECIMAL_FRACTION_DIGITS:
        return UserError(
            field,
            ErrorCode.INVALID_PRECISION,
            f"{name} has {fraction} decimal places; at most {DECIMAL_FRACTION_DIGITS}",
        )
    return None
