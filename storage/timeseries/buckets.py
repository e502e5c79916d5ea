"""Epoch-aligned bucket arithmetic shared by every backend, so they agree on bar edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.timeseries.base import KlineInterval

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def floor_to_interval(moment: datetime, interval: KlineInterval) -> datetime:
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    step = interval.seconds * 1_000_000
    return EPOCH + timedelta(microseconds=micros - micros % step)


def ceil_to_interval(moment: datetime, interval: KlineInterval) -> datetime:
    floored = floor_to_interval(moment, interval)
    return floored if floored == moment else floored + interval.duration


def tick_range_for_bars(
    start: datetime | None, end: datetime | None, interval: KlineInterval
) -> tuple[datetime | None, datetime | None]:
    """Tick bounds ``[lo, hi)`` covering exactly the bars whose start lies in ``[start, end)``.

    A bar belongs to the range by its start time; so a bar that starts before
    ``start`` is excluded whole rather than returned partially filled.
    """
    try:
        hi = ceil_to_interval(end, interval) if end is not None else None
    except OverflowError:
        hi = None  # past the last bucket that can start: every tick is before it
    try:
        lo = ceil_to_interval(start, interval) if start is not None else None
    except OverflowError:
        # No bucket can start at or after ``start``: an empty range, not an error.
        return LATEST, LATEST
    return lo, hi
