"""Closed bars of one interval, built from a stream of ticks.

Buckets are the time-series store's (epoch-aligned in UTC, labelled by their
start, see :mod:`storage.timeseries.buckets`), so a bar built here from live
ticks is the bar the store aggregates from the same ticks; ``1d`` buckets
start at 00:00 UTC.

A bar closes when a tick of a later bucket arrives, or when the clock passes
``max(bucket end, last tick arrival) + grace``. Waiting for a quiet ``grace``
after the last tick (not only after the bucket end) matters for backfills:
ticks with past times arrive in bursts long after their bucket ended, and a
bar must not close between two ticks of the same burst.

Within a bucket, open and close follow tick *time* (ties: arrival order),
as the store orders by time, so a tick that arrives slightly out of order
cannot become the close. A tick for a bucket that has already closed is late
and ignored (the rule of :mod:`graphql_api.market.late_ticks`, at bucket granularity);
:attr:`BarBuilder.late_ticks` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from graphql_api.market.late_ticks import is_late
from storage.timeseries import Bar, KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval

__all__ = ["DEFAULT_GRACE", "BarBuilder", "bucket_end"]

DEFAULT_GRACE = timedelta(seconds=2)


def bucket_end(start: datetime, interval: KlineInterval) -> datetime:
    return start + interval.duration


@dataclass(slots=True)
class _OpenBar:
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int
    # Tick times of the current open and close; None for a bar seeded from the
    # store, whose tick times are unknown (any live tick then moves the close).
    open_time: datetime | None
    close_time: datetime | None
    last_arrival: datetime

    def freeze(self, symbol: str) -> Bar:
        return Bar(
            symbol,
            self.time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.trade_count,
        )


class BarBuilder:
    """Folds one symbol's ticks into bars of ``interval``.

    Parameters:
        symbol: the symbol whose ticks are fed (others are ignored).
        interval: bar width.
        after: start of the last bar already closed elsewhere (e.g. evaluated
            before a restart); ticks of that bucket or earlier are late.
        grace: how long the clock waits past the bucket end (and past the last
            tick) before closing a bar without a later tick.
    """

    def __init__(
        self,
        symbol: str,
        interval: KlineInterval,
        *,
        after: datetime | None = None,
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        self.symbol = symbol
        self.interval = interval
        self.grace = grace
        self._closed_until = after
        self._bar: _OpenBar | None = None
        self.late_ticks = 0

    @property
    def open_bucket(self) -> datetime | None:
        return self._bar.time if self._bar is not None else None

    def seed(self, bar: Bar, *, received_at: datetime) -> None:
        """Start from a partial bar (the store's aggregate of the open bucket)."""
        if self._is_closed(bar.time):
            return
        self._bar = _OpenBar(
            bar.time,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.trade_count,
            open_time=None,
            close_time=None,
            last_arrival=received_at,
        )

    def on_tick(self, tick: Tick, *, received_at: datetime) -> list[Bar]:
        """Add a tick; returns the bar it closed, if any (at most one)."""
        if tick.symbol != self.symbol:
            return []
        bucket = floor_to_interval(tick.time, self.interval)
        if self._is_closed(bucket):
            self.late_ticks += 1
            return []
        current = self._bar
        if current is not None and is_late(bucket, latest=current.time):
            self.late_ticks += 1
            return []
        closed: list[Bar] = []
        if current is not None and bucket > current.time:
            closed.append(self._close())
            current = None
        if current is None:
            self._bar = _OpenBar(
                bucket,
                tick.last,
                tick.last,
                tick.last,
                tick.last,
                tick.volume,
                1,
                open_time=tick.time,
                close_time=tick.time,
                last_arrival=received_at,
            )
            return closed
        if current.open_time is not None and tick.time < current.open_time:
            current.open, current.open_time = tick.last, tick.time
        if current.close_time is None or tick.time >= current.close_time:
            current.close, current.close_time = tick.last, tick.time
        current.high = max(current.high, tick.last)
        current.low = min(current.low, tick.last)
        current.volume += tick.volume
        current.trade_count += 1
        current.last_arrival = max(current.last_arrival, received_at)
        return closed

    def on_timer(self, now: datetime) -> Bar | None:
        """Close the open bar if its bucket ended (and it has been quiet) ``grace`` ago."""
        current = self._bar
        if current is None:
            return None
        due = max(bucket_end(current.time, self.interval), current.last_arrival) + self.grace
        return self._close() if now >= due else None

    def _close(self) -> Bar:
        assert self._bar is not None
        bar = self._bar.freeze(self.symbol)
        self._closed_until = bar.time
        self._bar = None
        return bar

    def _is_closed(self, bucket: datetime) -> bool:
        return self._closed_until is not None and bucket <= self._closed_until
