"""Backtest and live agree: a recorded day through the live path against ``runBacktest``.

The day (``tests/data/recorded_day_BTCUSDT.csv.gz``, synthetic, see its
generator) is played by the real replay source into the real ingestor; the
real strategy engine builds bars from the published ticks and evaluates one
auto-trading strategy of every kind; their orders go through the real
``OrderService`` to the real paper matcher. Then the backtest service runs
each strategy over the bars the store aggregates from the same stored ticks.

What must agree: the stored bars are the recording's bars; every live signal
is the backtest's signal, same side, same bar, same order. What differs by
design (``docs/strategies.md``, "Backtest and live") is asserted exactly:

- the bar still forming when the recording ends is never evaluated live;
- a live signal's order fills at the bid/ask of the tick after the tick that
  closed the signal's bar; a backtest fills at the next bar's open, which is
  that closing tick's last price;
- live trades one lot on every signal; the (long-only) backtest only enters
  when flat and exits when long, and closes what is open at the last close;
- a strategy started mid-day (at noon) warms up on the ``warmup_bars`` stored
  bars before its start, so it agrees with a backtest that starts there; for
  the moving-window kinds that is also the whole day's backtest.

The day runs twice: uninterrupted, and with the engine restarted at 06:00,
noon and 18:00 the way a failover restarts it (the engine is stopped and a
new one starts from the database). Restarts change nothing: every kind,
including EMA, RSI and MACD whose state remembers every bar, emits exactly
the uninterrupted run's signals.

The replay runs on a clock the test drives (:class:`PacedClock`): recorded
spacing (speed 1), but no real waiting, and after each tick that closes a bar
the replay waits until the engine and the matcher have acted on it, as they
would have in the recorded seconds. The stamps are the recorded times moved
forward by whole days into the future, so every bar keeps its bucket and the
live path treats every tick and bar as fresh.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from graphql_api.market.sources.replay import ReplayClock, read_csv_file
from graphql_api.market.value_ranges import TimeWindow
from graphql_api.server.market_sources import replay_source
from graphql_api.server.runtime import open_services, strategy_engine
from graphql_api.services import Services
from graphql_api.strategies.backtest import Bars, Trade
from graphql_api.strategies.backtest.service import (
    BacktestRequest,
    prepare_backtest,
    run_backtest,
)
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.engine import StrategyEngine
from graphql_api.strategies.lifecycle import start_strategy
from graphql_api.strategies.rules import signals, warmup_bars
from graphql_api.trading.matcher import PaperMatcher
from storage import models
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import make_settings

RECORDING = Path(__file__).parents[2] / "data" / "recorded_day_BTCUSDT.csv.gz"
SYMBOL = "BTCUSDT"
LOT = Decimal("0.00001")
INTERVAL = KlineInterval.MINUTE_5
"""5-minute bars: 288 a day, two strategies of each kind, about 10 s per database.
1-minute bars pass too, but take about 90 s (every bar is a transaction per strategy)."""
PARAMETERS: dict[StrategyKind, dict[str, Any]] = {
    StrategyKind.SMA_CROSS: {"fast": 5, "slow": 20},
    StrategyKind.EMA_CROSS: {"fast": 5, "slow": 15},
    StrategyKind.RSI_REVERSION: {"period": 14, "lower": 30, "upper": 70},
    StrategyKind.MACD_CROSS: {"fast": 12, "slow": 26, "signal": 9},
    StrategyKind.BOLLINGER_BREAKOUT: {"period": 20, "stddev": 2.0},
}
WINDOWED = {StrategyKind.SMA_CROSS, StrategyKind.BOLLINGER_BREAKOUT}
"""Kinds whose indicators see only the last ``period`` bars; EMA, RSI (Wilder) and MACD
remember every bar since their first, with fading weight."""
SETTLE_TIMEOUT = 20.0
LATE_START = timedelta(hours=12)
"""The second set of strategies starts after the bar that starts this long after the first."""
RESTARTS = (timedelta(hours=6), LATE_START, timedelta(hours=18))
"""The engine restarts after the bars that start this long after the first (at noon before
the second set starts, so the first set is restarted with it running and the second after)."""


def test_every_strategy_kind_is_covered() -> None:
    assert set(PARAMETERS) == set(StrategyKind)


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(
        database_url,
        REPLAY_FILE=str(RECORDING),
        REPLAY_SPEED="1",
        TICK_FLUSH_INTERVAL_MS=0,  # group commit: a lone tick is written at once
        COMMISSION_RATE="0",
        ALLOW_SHORT_SELLING="true",  # every signal's lot fills, whatever is held
        # the engine and the matcher run in the test, where it can watch them
        STRATEGY_ENGINE_ENABLED="false",
        MATCHER_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        EQUITY_SNAPSHOTS_ENABLED="false",
        WEBHOOKS_ENABLED="false",
    )
    async with open_services(settings) as running:
        yield running


@contextlib.asynccontextmanager
async def running(work: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    task = asyncio.create_task(work())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not in time: {what}")
        await asyncio.sleep(0.002)


@dataclass(frozen=True, slots=True)
class Recording:
    """The recorded ticks and where the replay stamps them (``shift`` later)."""

    ticks: list[Tick]
    shift: timedelta

    def bucket(self, index: int) -> datetime:
        return floor_to_interval(self.ticks[index].time + self.shift, INTERVAL)

    def closes_bar(self, index: int) -> bool:
        """Whether tick ``index`` is the first of a later bucket: live, it closes a bar."""
        return index > 0 and self.bucket(index) > self.bucket(index - 1)

    def final_closed_bar(self) -> datetime | None:
        """The bar the recording's last tick closes, if it opens a bucket of its own."""
        last = len(self.ticks) - 1
        return self.bucket(last - 1) if self.closes_bar(last) else None

    def closing_tick(self, bar: datetime) -> int | None:
        """The index of the tick that closes ``bar`` live (the first one after it)."""
        end = bar + INTERVAL.duration - self.shift
        index = bisect.bisect_left([tick.time for tick in self.ticks], end)
        return index if index < len(self.ticks) else None


class PacedClock:
    """The replay's clock: recorded spacing, no real waiting.

    A sleep moves the clock on to the next tick that closes a bar, so the replay
    hands every tick up to and including that one over in one call, as fast as
    the ingest path takes it; the sleep after it lasts until ``settled(bar)``.
    Stamps keep their recorded offsets whatever the chunking (the replay stamps
    each tick by its own schedule).
    """

    def __init__(
        self, recording: Recording, settled: Callable[[datetime], Awaitable[None]]
    ) -> None:
        first = recording.ticks[0].time
        self._due = [round((t.time - first).total_seconds(), 6) for t in recording.ticks]
        closing = [i for i in range(len(self._due)) if recording.closes_bar(i)]
        self._closing_due = [self._due[i] for i in closing]
        self._recording = recording
        self._settled = settled
        self._anchor = first + recording.shift
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self._anchor

    async def sleep(self, seconds: float) -> None:
        handed = bisect.bisect_right(self._due, self.seconds) - 1  # the last tick handed over
        if self._recording.closes_bar(handed):
            await self._settled(self._recording.bucket(handed - 1))
        wanted = round(self.seconds + seconds, 6)
        upcoming = bisect.bisect_left(self._closing_due, wanted)
        self.seconds = (
            self._closing_due[upcoming] if upcoming < len(self._closing_due) else self._due[-1]
        )
        await asyncio.sleep(0)

    def replay_clock(self) -> ReplayClock:
        return ReplayClock(monotonic=self.monotonic, now=self.now, sleep=self.sleep)


class EngineSlot:
    """The strategy engine the replay feeds; :meth:`restart` replaces it as a failover
    does: the running engine (its runners and their state) is stopped, and a new one
    starts from what the database holds."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.engine = self._new()
        self._task = asyncio.create_task(self.engine.run())
        self.restarts = 0

    def _new(self) -> StrategyEngine:
        return strategy_engine(self._services, poll_interval=0.1, timer_interval=0.05)

    async def restart(self, ids: list[int]) -> None:
        await self.stop()
        assert self.engine.running() == set(), "the stopped engine holds no runner"
        self.engine = self._new()
        self._task = asyncio.create_task(self.engine.run())
        self.restarts += 1
        engine = self.engine

        async def all_running() -> bool:
            return set(ids) <= engine.running()

        await eventually(all_running, "the new engine runs every strategy")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def started_strategies(
    services: Services, engine: StrategyEngine, label: str
) -> dict[StrategyKind, int]:
    """One auto-trading strategy of every kind, started and picked up by the engine."""
    ids: dict[StrategyKind, int] = {}
    for kind, parameters in PARAMETERS.items():
        created = await services.strategies.create(
            services.demo_user_id,
            StrategyDraft(
                name=f"{label} {kind.value}",
                kind=kind,
                symbol=SYMBOL,
                interval=INTERVAL,
                parameters=parameters,
                auto_trade=True,
            ),
        )
        assert created.strategy is not None, created.errors
        ids[kind] = created.strategy.id
        outcome = await start_strategy(
            services.sessions, services.outbox, services.demo_user_id, created.strategy.id
        )
        assert not outcome.errors

    async def all_running() -> bool:
        return set(ids.values()) <= engine.running()

    await eventually(all_running, "every strategy has a runner")
    return ids


class LivePath:
    """The engine and the matcher the replay feeds, and the strategies they run.

    ``settled(bar)`` is the replay clock's wait after a tick that closed ``bar``:
    until every strategy evaluated it and every order placed on it rests in the
    matcher's book (so the next tick is the first one the order can meet). After
    each bar of ``restart_after`` it restarts the engine; after the bar
    ``late_after`` it starts a second set of strategies: mid-day starts.
    """

    def __init__(
        self,
        services: Services,
        engine: EngineSlot,
        matcher: PaperMatcher,
        late_after: datetime,
        restart_after: list[datetime],
    ) -> None:
        self._services = services
        self._engine = engine
        self._matcher = matcher
        self._late_after = late_after
        self._restart_after = restart_after
        self.early: dict[StrategyKind, int] = {}
        self.late: dict[StrategyKind, int] = {}

    async def start(self) -> None:
        self.early = await started_strategies(self._services, self._engine.engine, "from the open")

    async def settled(self, bar: datetime) -> None:
        await eventually(
            lambda: self._acted_on(bar), f"the live path acted on the bar of {bar.isoformat()}"
        )
        if bar in self._restart_after:
            await self._engine.restart([*self.early.values(), *self.late.values()])
        if bar == self._late_after:
            self.late = await started_strategies(self._services, self._engine.engine, "from noon")

    async def _acted_on(self, bar: datetime) -> bool:
        ids = [*self.early.values(), *self.late.values()]
        async with self._services.sessions() as session:
            evaluated = await session.scalar(
                select(func.count()).where(
                    models.Strategy.id.in_(ids), models.Strategy.last_bar_at >= bar
                )
            )
            if evaluated != len(ids):
                return False
            unplaced = await session.scalar(
                select(func.count()).where(
                    models.Signal.strategy_id.in_(ids), models.Signal.order_id.is_(None)
                )
            )
            if unplaced:
                return False
            waiting = list(
                await session.scalars(
                    select(models.Order.id).where(
                        models.Order.symbol_code == SYMBOL, models.Order.status == "NEW"
                    )
                )
            )
        book = self._matcher.book(SYMBOL)
        return all(book is not None and order_id in book for order_id in waiting)


async def replay_the_day(
    services: Services, restarts: tuple[timedelta, ...]
) -> tuple[Recording, LivePath]:
    specs = {spec.code: spec for spec in services.catalog.all()}
    now = datetime.now(UTC)
    window = TimeWindow.around(now, services.settings.max_tick_age_years, timedelta(0))
    ticks = read_csv_file(RECORDING, specs, window)
    # Whole days keep every bucket; a minute of margin keeps every stamp in the future.
    days = math.ceil((now + timedelta(minutes=1) - ticks[0].time) / timedelta(days=1))
    recording = Recording(ticks, timedelta(days=days))
    matcher = PaperMatcher(
        services.sessions,
        services.hub,
        services.catalog,
        services.orders,
        services.orders.risk_policy,
        resync_every=3600,  # the book follows orders.new only, so tick/order order holds
        activity=services.activity,
    )
    start = recording.bucket(0)
    async with running(matcher.run):
        engine = EngineSlot(services)
        try:
            path = LivePath(
                services,
                engine,
                matcher,
                start + LATE_START,
                [start + offset for offset in restarts],
            )
            await replay_through(services, recording, path)
        finally:
            await engine.stop()
    assert engine.restarts == len(restarts)
    assert path.late, "the late strategies started"
    return recording, path


async def replay_through(services: Services, recording: Recording, path: LivePath) -> None:
    """Replay the whole recording through ``path``, until every order that can fill did."""
    await path.start()
    clock = PacedClock(recording, path.settled)
    source = await replay_source(services, clock=clock.replay_clock())
    await source.run(services.ingestor)
    assert source.passes == 1
    final = recording.final_closed_bar()
    if final is not None:  # the last tick closed a bar: no later sleep waited for it
        await path.settled(final)

    async def all_filled() -> bool:
        async with services.sessions() as session:
            waiting = await session.scalar(
                select(func.count()).where(
                    models.Order.symbol_code == SYMBOL,
                    models.Order.status == "NEW",
                    models.Order.id.not_in(
                        select(models.Signal.order_id).where(models.Signal.bar_time == final)
                    ),
                )
            )
        return waiting == 0

    await eventually(all_filled, "the matcher filled every order a later tick can fill")


async def live_signals(services: Services, strategy_id: int) -> list[models.Signal]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(models.Signal)
                .where(models.Signal.strategy_id == strategy_id)
                .order_by(models.Signal.bar_time)
            )
        )


async def fill_of(services: Services, order_id: int) -> tuple[models.Order, list[models.Trade]]:
    async with services.sessions() as session:
        order = await session.get(models.Order, order_id)
        assert order is not None
        trades = list(
            await session.scalars(select(models.Trade).where(models.Trade.order_id == order_id))
        )
    return order, trades


def recorded_bars(recording: Recording) -> list[tuple[datetime, Decimal, Decimal]]:
    """(start, open, close) of each bucket, folded straight from the recording."""
    bars: list[tuple[datetime, Decimal, Decimal]] = []
    for index, tick in enumerate(recording.ticks):
        bucket = recording.bucket(index)
        if bars and bars[-1][0] == bucket:
            bars[-1] = (bucket, bars[-1][1], tick.last)
        else:
            bars.append((bucket, tick.last, tick.last))
    return bars


def long_only_fills(sides: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The signals a long-only backtest acts on: a buy when flat, a sell when long."""
    acted, long = [], False
    for side, bar in sides:
        if (side == "BUY") != long:
            acted.append((side, bar))
            long = not long
    return acted


@dataclass(frozen=True, slots=True)
class Backtested:
    """A backtest of one strategy from some bar to the end of the day: the signals its
    rule gives on those bars (as indices into the whole day) and its round trips."""

    signals: list[tuple[str, int]]
    trades: list[tuple[str, Decimal, datetime, Decimal, datetime, Decimal]]


@dataclass(frozen=True, slots=True)
class Day:
    """The stored bars of the replayed day, as ``runBacktest`` loads them."""

    recording: Recording
    bars: Bars
    times: list[datetime]

    @property
    def last(self) -> int:
        return len(self.times) - 1

    def index(self, moment: datetime) -> int:
        return self.times.index(moment)


async def stored_day(services: Services, recording: Recording) -> Day:
    ticks, shift = recording.ticks, recording.shift
    request = BacktestRequest(
        kind=StrategyKind.SMA_CROSS.value,
        parameters=PARAMETERS[StrategyKind.SMA_CROSS],
        symbol=SYMBOL,
        start=ticks[0].time + shift - timedelta(days=1),
        end=ticks[-1].time + shift + timedelta(days=1),
        interval=INTERVAL,
    )
    prepared, errors = await prepare_backtest(
        services.sessions, services.catalog, services.timeseries, request
    )
    assert prepared is not None, errors
    bars = prepared.bars
    return Day(recording, bars, [bars.time_at(i) for i in range(len(bars))])


async def backtest(services: Services, day: Day, kind: StrategyKind, first: int) -> Backtested:
    """``runBacktest`` of ``kind`` from bar ``first`` to the end of the day, one lot a trade."""
    request = BacktestRequest(
        kind=kind.value,
        parameters=PARAMETERS[kind],
        symbol=SYMBOL,
        start=day.times[first],
        end=day.times[-1] + INTERVAL.duration,
        interval=INTERVAL,
        commission_rate=Decimal(0),
        fixed_quantity=LOT,
    )
    outcome = await run_backtest(services.sessions, services.catalog, services.timeseries, request)
    assert outcome.result is not None, outcome.errors
    assert len(outcome.result.times) == len(day.times) - first
    closes = day.bars.close[first:]
    raw = signals(kind.value, PARAMETERS[kind], closes)
    return Backtested(
        [("BUY" if raw[i] > 0 else "SELL", first + i) for i in range(len(raw)) if raw[i] != 0],
        [_shape(trade) for trade in outcome.result.trades],
    )


def long_only_trades(
    day: Day, acted_on: list[tuple[str, int]]
) -> list[tuple[str, Decimal, datetime, Decimal, datetime, Decimal]]:
    """The round trips of a long-only backtest of these signals: entries and exits at the
    next bar's open, one lot, and a long still open closed at the last close."""
    acted = long_only_fills(acted_on)
    bars = day.bars
    fills = [(i + 1, bars.open_price(i + 1)) for _, i in acted]
    if len(fills) % 2:
        fills.append((day.last, bars.close_price(day.last)))
    return [
        ("LONG", LOT, day.times[entry], entry_price, day.times[exit_], exit_price)
        for (entry, entry_price), (exit_, exit_price) in zip(fills[::2], fills[1::2], strict=True)
    ]


async def check_live_strategy(
    services: Services, day: Day, strategy_id: int, expected: list[tuple[str, int]]
) -> None:
    """The strategy emitted ``expected`` (bar indices), evaluated every bar but the one
    still forming, and each signal's lot filled at the bid/ask of the tick after the
    one that closed its bar (that closing tick's last price is the next bar's open)."""
    recording = day.recording
    rows = await live_signals(services, strategy_id)
    assert [(row.side, day.index(row.bar_time)) for row in rows] == expected
    async with services.sessions() as session:
        strategy = await session.get(models.Strategy, strategy_id)
        assert strategy is not None
        assert strategy.last_bar_at == day.times[day.last - 1]
    for row in rows:
        assert row.price == day.bars.close_price(day.index(row.bar_time))
        assert row.order_id is not None
        order, trades = await fill_of(services, row.order_id)
        closing = recording.closing_tick(row.bar_time)
        assert closing is not None
        assert recording.ticks[closing].last == day.bars.open_price(day.index(row.bar_time) + 1)
        if closing + 1 == len(recording.ticks):
            # closed by the recording's last tick: the order waits for a tick to come
            assert (order.side, order.quantity, order.status, trades) == (row.side, LOT, "NEW", [])
            continue
        assert (order.side, order.type, order.quantity, order.status) == (
            row.side,
            "MARKET",
            LOT,
            "FILLED",
        )
        after = recording.ticks[closing + 1]
        assert [(t.side, t.quantity, t.price, t.tick_time) for t in trades] == [
            (
                row.side,
                LOT,
                after.ask if row.side == "BUY" else after.bid,
                after.time + recording.shift,
            )
        ]


@pytest.mark.parametrize("restarts", [(), RESTARTS], ids=["uninterrupted", "restarted"])
async def test_a_recorded_day_gives_the_same_signals_live_and_in_a_backtest(
    services: Services, restarts: tuple[timedelta, ...]
) -> None:
    # given a recorded day replayed through the live path: one strategy of every kind
    # running from the start, and one of every kind started at noon (with the engine
    # restarted at 06:00, noon and 18:00, or never)
    recording, path = await replay_the_day(services, restarts)
    day = await stored_day(services, recording)
    # then the stored bars are the recording's, bucket for bucket
    assert [
        (day.times[i], day.bars.open_price(i), day.bars.close_price(i))
        for i in range(len(day.times))
    ] == recorded_bars(recording)
    noon = day.index(recording.bucket(0) + LATE_START)

    for kind, strategy_id in path.early.items():
        # when the strategy is backtested over the whole day
        whole = await backtest(services, day, kind, 0)
        assert len(whole.signals) >= 6, f"{kind}: the day should cross several times"
        # then live emitted the backtest's signals, bar for bar, in order, except one on
        # the bar still forming at the end (never evaluated live)
        evaluated = [(side, i) for side, i in whole.signals if i < day.last]
        await check_live_strategy(services, day, strategy_id, evaluated)
        # and the backtest traded the long-only subsequence of them at the next open
        assert whole.trades == long_only_trades(day, evaluated), kind

    for kind, strategy_id in path.late.items():
        # when a strategy started at noon is backtested from its warm-up bars on: the
        # warmup_bars(kind) bars up to noon, which the runner replayed on start
        first = noon - warmup_bars(kind.value, PARAMETERS[kind]) + 1
        window = await backtest(services, day, kind, first)
        # then the warm-up bars carry no signal, and live emitted the backtest's after
        assert all(i > noon for _, i in window.signals), kind
        evaluated = [(side, i) for side, i in window.signals if i < day.last]
        await check_live_strategy(services, day, strategy_id, evaluated)
        assert window.trades == long_only_trades(day, evaluated), kind
        if kind in WINDOWED:
            # a moving window forgets what came before it: the whole day's backtest
            # gives the same signals after noon
            whole = await backtest(services, day, kind, 0)
            assert evaluated == [(side, i) for side, i in whole.signals if noon < i < day.last]


def _shape(trade: Trade) -> tuple[str, Decimal, datetime, Decimal, datetime, Decimal]:
    return (
        trade.side,
        trade.quantity,
        trade.entry_time,
        trade.entry_price,
        trade.exit_time,
        trade.exit_price,
    )
