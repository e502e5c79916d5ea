"""Epoch-aligned bucket arithmetic shared by every backend, so they agree on bar edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from storage.timeseries.base import KlineInterval

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to_interval(moment: datetime, interval: KlineInterval) -> datetime:
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    step = interval.seconds * 1_000_000
    return EPOCH + timedelta(microseconds=micros - micros % step)


def ceil_to_interval(moment: datetime, interval: KlineInterval) -> datetime | None:
    """The first bar start at or after ``moment``; None past the calendar's last one.

    Every interval divides a day, so flooring never leaves the calendar; only
    the step up can (a moment inside the last bar of 9999-12-31).
    """
    floored = floor_to_interval(moment, interval)
    if floored == moment:
        return floored
    try:
        return floored + interval.duration
    except OverflowError:
        return None


def tick_range_for_bars(
    start: datetime | None, end: datetime | None, interval: KlineInterval
) -> tuple[datetime | None, datetime | None] | None:
    """Tick bounds ``[lo, hi)`` covering exactly the bars whose start lies in ``[start, end)``.

    A bar belongs to the range by its start time; so a bar that starts before
    ``start`` is excluded whole rather than returned partially filled. None
    when no bar can start in the range (``start`` lies inside the calendar's
    last bar); an ``end`` there bounds nothing (``hi`` None).
    """
    lo = ceil_to_interval(start, interval) if start is not None else None
    if start is not None and lo is None:
        return None
    hi = ceil_to_interval(end, interval) if end is not None else None
    return lo, hi


def day_range_for_bars(
    start: datetime | None, end: datetime | None
) -> tuple[date | None, date | None] | None:
    """The days ``[lo, hi)`` of the daily bars whose 00:00 UTC start lies in ``[start, end)``.

    Same rules as :func:`tick_range_for_bars` (None: no day can start in the range).
    """
    bounds = tick_range_for_bars(start, end, KlineInterval.DAY_1)
    if bounds is None:
        return None
    lo, hi = bounds
    return (lo.date() if lo is not None else None, hi.date() if hi is not None else None)
