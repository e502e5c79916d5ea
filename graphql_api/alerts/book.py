"""The active alerts of one symbol, indexed so a tick touches only the alerts it meets.

Pure and synchronous (no I/O): the engine (:mod:`.engine`) feeds ticks and the
clock, and stores what comes out. The cost of a tick does not grow with the
number of alerts that do not fire:

- price crosses: levels are kept sorted, one list per direction; a tick moving
  the last price from ``p0`` up to ``p1`` fires exactly the levels in
  ``(p0, p1]`` (two bisections), a move down the levels in ``[p1, p0)``;
- moves: alerts are grouped by (window, direction); each group keeps the
  window's lowest (highest) price in a monotonic deque, amortised O(1) per tick,
  and its alerts sorted by percent, so the alerts a move meets are a prefix;
- indicators: one :class:`~graphql_api.strategies.engine.bars.BarBuilder` per
  interval, one incremental indicator per (indicator, period), and thresholds
  sorted like price levels; they are only looked at when a bar closes.

A ``ONCE`` alert leaves the book when it fires; a ``REARM`` move alert sleeps
for its window after firing (it would otherwise fire on every tick of the same
move). Ticks older than the last one seen are late and ignored for prices and
moves (bars apply their own lateness rule).
"""

from __future__ import annotations

import bisect
import heapq
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from graphql_api.alerts.conditions import AlertIndicator, AlertKind, AlertMode
from graphql_api.market.indicators import IncrementalEMA, IncrementalRSI, IncrementalSMA
from graphql_api.strategies.engine.bars import DEFAULT_GRACE, BarBuilder, bucket_end
from storage import models
from storage.timeseries import Bar, KlineInterval, Tick

__all__ = ["SymbolBook", "Trigger", "WatchedAlert", "warmup_bars"]

_LAST_ID = sys.maxsize
_VALUE_STEP = Decimal("0.000001")

# (threshold, alert id), sorted; thresholds are Decimal (compared exactly with floats).
Ladder = list[tuple[Decimal, int]]


@dataclass(frozen=True, slots=True)
class WatchedAlert:
    """What the evaluator needs of an ACTIVE alert row, detached from any session."""

    id: int
    user_id: int
    symbol: str
    kind: AlertKind
    mode: AlertMode
    level: Decimal | None
    percent: Decimal | None
    window: timedelta | None
    interval: KlineInterval | None
    indicator: AlertIndicator | None
    period: int | None
    expires_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.Alert) -> WatchedAlert:
        return cls(
            id=row.id,
            user_id=row.user_id,
            symbol=row.symbol_code,
            kind=AlertKind(row.kind),
            mode=AlertMode(row.mode),
            level=row.level,
            percent=row.percent,
            window=timedelta(seconds=row.window_seconds) if row.window_seconds else None,
            interval=KlineInterval(row.interval) if row.interval else None,
            indicator=AlertIndicator(row.indicator) if row.indicator else None,
            period=row.period,
            expires_at=row.expires_at,
            updated_at=row.updated_at,
        )

    @property
    def version(self) -> tuple[int, datetime]:
        """Changes when the user changes the alert (pause, resume): it is re-indexed."""
        return self.id, self.updated_at

    def live_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


class Met(NamedTuple):
    """An alert (by id) met, as a group inside the book reports it."""

    alert_id: int
    at: datetime
    price: Decimal
    value: Decimal | None
    message: str


@dataclass(frozen=True, slots=True)
class Trigger:
    """An alert met at ``at`` (tick time, or the closed bar's start) at ``price``;
    ``value`` is the indicator's value or the move in percent."""

    alert: WatchedAlert
    at: datetime
    price: Decimal
    value: Decimal | None
    message: str


def warmup_bars(period: int) -> int:
    """Closed bars replayed before an indicator's crossings count: Wilder and
    exponential smoothing need several periods to forget their seed."""
    return max(4 * period, period + 2)


class SymbolBook:
    """The ACTIVE alerts of ``symbol``.

    Parameters:
        symbol: its code.
        grace: how long a bar waits for late ticks (see :class:`BarBuilder`).
    """

    def __init__(self, symbol: str, *, grace: timedelta = DEFAULT_GRACE) -> None:
        self.symbol = symbol
        self._grace = grace
        self.alerts: dict[int, WatchedAlert] = {}
        self.last: Tick | None = None
        self._above: Ladder = []
        self._below: Ladder = []
        self._moves: dict[tuple[timedelta, bool], _MoveGroup] = {}
        self._bars: dict[KlineInterval, _BarGroup] = {}

    def __len__(self) -> int:
        return len(self.alerts)

    def add(self, alert: WatchedAlert) -> KlineInterval | None:
        """Index ``alert``; returns the interval whose indicators must be warmed
        (:meth:`warm`) before it can fire, if any."""
        self.remove(alert.id)
        self.alerts[alert.id] = alert
        kind = alert.kind
        if kind.is_price_cross:
            assert alert.level is not None
            bisect.insort(self._above if kind.upward else self._below, (alert.level, alert.id))
            return None
        if kind.is_move:
            assert alert.window is not None
            key = (alert.window, kind.upward)
            group = self._moves.get(key)
            if group is None:
                group = self._moves[key] = _MoveGroup(alert.window, kind.upward)
            group.add(alert)
            return None
        assert alert.interval is not None
        bars = self._bars.get(alert.interval)
        if bars is None:
            bars = self._bars[alert.interval] = _BarGroup(self.symbol, alert.interval, self._grace)
        return alert.interval if bars.add(alert) else None

    def remove(self, alert_id: int) -> None:
        alert = self.alerts.pop(alert_id, None)
        if alert is None:
            return
        kind = alert.kind
        if kind.is_price_cross:
            assert alert.level is not None
            _discard(self._above if kind.upward else self._below, (alert.level, alert.id))
        elif kind.is_move:
            assert alert.window is not None
            key = (alert.window, kind.upward)
            group = self._moves[key]
            group.remove(alert)
            if not group:
                del self._moves[key]
        else:
            assert alert.interval is not None
            bars = self._bars[alert.interval]
            bars.remove(alert)
            if not bars:
                del self._bars[alert.interval]

    def warm(self, interval: KlineInterval, bars: list[Bar], now: datetime) -> None:
        """Rebuild ``interval``'s indicators from stored bars, oldest first (the last
        one may still be open: it seeds the live bar instead)."""
        group = self._bars.get(interval)
        if group is not None:
            group.warm(bars, now)

    def warmup_needed(self, interval: KlineInterval) -> int:
        group = self._bars.get(interval)
        return group.warmup if group is not None else 0

    def on_tick(self, tick: Tick, now: datetime) -> list[Trigger]:
        """The alerts ``tick`` meets (ONCE ones leave the book)."""
        if tick.symbol != self.symbol:
            return []
        met: list[Met] = []
        previous = self.last
        if previous is None or tick.time >= previous.time:
            self.last = tick
            if previous is not None and tick.last != previous.last:
                met.extend(self._crossed(previous.last, tick))
            for group in self._moves.values():
                met.extend(group.on_tick(tick))
        for bars in self._bars.values():
            met.extend(bars.on_tick(tick, now))
        return self._settle(met, now)

    def on_timer(self, now: datetime) -> list[Trigger]:
        """Close quiet bars; the indicator alerts they meet."""
        met: list[Met] = []
        for bars in self._bars.values():
            met.extend(bars.on_timer(now))
        return self._settle(met, now)

    def _crossed(self, before: Decimal, tick: Tick) -> Iterable[Met]:
        after = tick.last
        if after > before:
            ladder, verb = self._above, "crossed above"
            start = bisect.bisect_right(ladder, (before, _LAST_ID))
            end = bisect.bisect_right(ladder, (after, _LAST_ID))
        else:
            ladder, verb = self._below, "crossed below"
            start = bisect.bisect_left(ladder, (after, -1))
            end = bisect.bisect_left(ladder, (before, -1))
        for level, alert_id in ladder[start:end]:
            yield Met(
                alert_id,
                tick.time,
                after,
                None,
                f"{self.symbol} {verb} {level:f} (last {after:f}, was {before:f})",
            )

    def _settle(self, met: list[Met], now: datetime) -> list[Trigger]:
        """Triggers of the alerts met, but not of expired ones; ONCE alerts leave the book."""
        kept: list[Trigger] = []
        for found in met:
            alert = self.alerts.get(found.alert_id)
            if alert is None:
                continue  # a ONCE alert met twice in one pass (two bars closing at once)
            if not alert.live_at(now):
                self.remove(alert.id)
                continue
            if alert.mode is AlertMode.ONCE:
                self.remove(alert.id)
            kept.append(Trigger(alert, found.at, found.price, found.value, found.message))
        return kept


class _MoveGroup:
    """Move alerts of one (window, direction): the window's extreme and a percent ladder."""

    def __init__(self, window: timedelta, upward: bool) -> None:
        self.window = window
        self.upward = upward
        self._ticks: deque[tuple[datetime, Decimal]] = deque()
        # Monotonic: increasing prices for the minimum (rises), decreasing for the maximum.
        self._extreme: deque[tuple[datetime, Decimal]] = deque()
        self._armed: Ladder = []
        self._asleep: list[tuple[datetime, int, Decimal]] = []  # heap: (wakes at, id, percent)
        self._ids: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self._ids)

    def add(self, alert: WatchedAlert) -> None:
        assert alert.percent is not None
        bisect.insort(self._armed, (alert.percent, alert.id))
        self._ids.add(alert.id)

    def remove(self, alert: WatchedAlert) -> None:
        assert alert.percent is not None
        self._ids.discard(alert.id)
        _discard(self._armed, (alert.percent, alert.id))
        # A sleeping one is skipped when it wakes (its id is gone).

    def on_tick(self, tick: Tick) -> list[Met]:
        now, price = tick.time, tick.last
        while self._asleep and self._asleep[0][0] <= now:
            _, alert_id, percent = heapq.heappop(self._asleep)
            if alert_id in self._ids:
                bisect.insort(self._armed, (percent, alert_id))
        horizon = now - self.window
        while self._extreme and self._extreme[0][0] < horizon:
            self._extreme.popleft()
        met_: list[Met] = []
        if self._extreme and self._armed:
            reference = self._extreme[0][1]
            change = price - reference if self.upward else reference - price
            if change > 0:
                moved = change * 100 / reference
                met = bisect.bisect_right(self._armed, (moved, _LAST_ID))
                if met:
                    fired, self._armed = self._armed[:met], self._armed[met:]
                    met_ = [
                        self._met(alert_id, percent, tick, reference, moved)
                        for percent, alert_id in fired
                    ]
        # Keep the deque monotonic: a new price makes older, less extreme ones useless.
        while self._extreme and (
            self._extreme[-1][1] >= price if self.upward else self._extreme[-1][1] <= price
        ):
            self._extreme.pop()
        self._extreme.append((now, price))
        return met_

    def _met(
        self, alert_id: int, percent: Decimal, tick: Tick, reference: Decimal, moved: Decimal
    ) -> Met:
        heapq.heappush(self._asleep, (tick.time + self.window, alert_id, percent))
        verb = "rose" if self.upward else "fell"
        seconds = int(self.window.total_seconds())
        return Met(
            alert_id,
            tick.time,
            tick.last,
            moved.quantize(_VALUE_STEP),
            f"{tick.symbol} {verb} {moved.quantize(Decimal('0.01')):f}% within {seconds}s "
            f"(from {reference:f} to {tick.last:f}; alert at {percent:f}%)",
        )


Indicator = Callable[[float], float | None]


def _indicator(kind: AlertIndicator, period: int) -> Indicator:
    if kind is AlertIndicator.RSI:
        return IncrementalRSI(period).update
    if kind is AlertIndicator.SMA:
        return IncrementalSMA(period).update
    return IncrementalEMA(period).update


@dataclass(slots=True)
class _Series:
    """One indicator on one interval's closed bars, with its thresholds."""

    indicator: AlertIndicator
    period: int
    update: Indicator
    previous: float | None = None
    above: Ladder = field(default_factory=list)
    below: Ladder = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.above or self.below)

    def on_close(self, close: float) -> tuple[float | None, float | None]:
        value = self.update(close)
        before, self.previous = self.previous, value
        return before, value


class _BarGroup:
    """Indicator alerts of one interval: closed bars from ticks, one series per indicator."""

    def __init__(self, symbol: str, interval: KlineInterval, grace: timedelta) -> None:
        self.symbol = symbol
        self.interval = interval
        self._grace = grace
        self._builder = BarBuilder(symbol, interval, grace=grace)
        self._series: dict[tuple[AlertIndicator, int], _Series] = {}
        self._ids: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self._ids)

    @property
    def warmup(self) -> int:
        return max((warmup_bars(period) for _, period in self._series), default=0)

    def add(self, alert: WatchedAlert) -> bool:
        """Whether the alert needs a new series (which must be warmed first)."""
        assert alert.indicator is not None and alert.period is not None
        assert alert.level is not None
        key = (alert.indicator, alert.period)
        series = self._series.get(key)
        new = series is None
        if series is None:
            series = self._series[key] = _Series(
                alert.indicator, alert.period, _indicator(alert.indicator, alert.period)
            )
        ladder = series.above if alert.kind.upward else series.below
        bisect.insort(ladder, (alert.level, alert.id))
        self._ids.add(alert.id)
        return new

    def remove(self, alert: WatchedAlert) -> None:
        assert alert.indicator is not None and alert.period is not None
        assert alert.level is not None
        key = (alert.indicator, alert.period)
        series = self._series[key]
        _discard(series.above if alert.kind.upward else series.below, (alert.level, alert.id))
        self._ids.discard(alert.id)
        if not series:
            del self._series[key]

    def warm(self, bars: list[Bar], now: datetime) -> None:
        open_bar = None
        if bars and now < bucket_end(bars[-1].time, self.interval) + self._grace:
            open_bar = bars.pop()
        for key, series in self._series.items():
            series.update = _indicator(*key)
            series.previous = None
            for bar in bars:
                series.on_close(float(bar.close))
        self._builder = BarBuilder(
            self.symbol, self.interval, after=bars[-1].time if bars else None, grace=self._grace
        )
        if open_bar is not None:
            self._builder.seed(open_bar, received_at=now)

    def on_tick(self, tick: Tick, now: datetime) -> list[Met]:
        met: list[Met] = []
        for bar in self._builder.on_tick(tick, received_at=now):
            met.extend(self._closed(bar))
        return met

    def on_timer(self, now: datetime) -> list[Met]:
        bar = self._builder.on_timer(now)
        return self._closed(bar) if bar is not None else []

    def _closed(self, bar: Bar) -> list[Met]:
        met: list[Met] = []
        for series in self._series.values():
            before, after = series.on_close(float(bar.close))
            if before is None or after is None or before == after:
                continue
            if after > before:
                ladder, verb = series.above, "crossed above"
                start = bisect.bisect_right(ladder, (before, _LAST_ID))
                end = bisect.bisect_right(ladder, (after, _LAST_ID))
            else:
                ladder, verb = series.below, "crossed below"
                start = bisect.bisect_left(ladder, (after, -1))
                end = bisect.bisect_left(ladder, (before, -1))
            value = Decimal(after).quantize(_VALUE_STEP)
            name = f"{series.indicator.value}({series.period})"
            for level, alert_id in ladder[start:end]:
                met.append(
                    Met(
                        alert_id,
                        bar.time,
                        bar.close,
                        value,
                        f"{name} of {self.symbol} {self.interval.value} {verb} {level:f} "
                        f"(now {value.quantize(Decimal('0.01')):f}, close {bar.close:f})",
                    )
                )
        return met


def _discard(ladder: Ladder, entry: tuple[Decimal, int]) -> None:
    at = bisect.bisect_left(ladder, entry)
    if at < len(ladder) and ladder[at] == entry:
        del ladder[at]
