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
  when flat and exits when long, and closes what is open at the last close.

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
from graphql_api.strategies.backtest import Trade
from graphql_api.strategies.backtest.service import (
    BacktestRequest,
    prepare_backtest,
    run_backtest,
)
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.engine import StrategyEngine
from graphql_api.strategies.lifecycle import start_strategy
from graphql_api.strategies.rules import signals
from graphql_api.trading.matcher import PaperMatcher
from storage import models
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import make_settings

RECORDING = Path(__file__).parents[2] / "data" / "recorded_day_BTCUSDT.csv.gz"
SYMBOL = "BTCUSDT"
LOT = Decimal("0.00001")
INTERVAL = KlineInterval.MINUTE_5
PARAMETERS: dict[StrategyKind, dict[str, Any]] = {
    StrategyKind.SMA_CROSS: {"fast": 5, "slow": 20},
    StrategyKind.EMA_CROSS: {"fast": 5, "slow": 15},
    StrategyKind.RSI_REVERSION: {"period": 14, "lower": 30, "upper": 70},
    StrategyKind.MACD_CROSS: {"fast": 12, "slow": 26, "signal": 9},
    StrategyKind.BOLLINGER_BREAKOUT: {"period": 20, "stddev": 2.0},
}
SETTLE_TIMEOUT = 20.0


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


async def started_strategies(services: Services, engine: StrategyEngine) -> dict[StrategyKind, int]:
    ids: dict[StrategyKind, int] = {}
    for kind, parameters in PARAMETERS.items():
        created = await services.strategies.create(
            services.demo_user_id,
            StrategyDraft(
                name=f"parity {kind.value}",
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
        return engine.running() == set(ids.values())

    await eventually(all_running, "every strategy has a runner")
    return ids


def settled_check(
    services: Services, matcher: PaperMatcher, strategy_ids: list[int]
) -> Callable[[datetime], Awaitable[None]]:
    """Wait until every strategy evaluated ``bar`` and every order it placed rests in
    the matcher's book (so the next tick is the first one the order can meet)."""

    async def settled(bar: datetime) -> None:
        async def done() -> bool:
            async with services.sessions() as session:
                evaluated = await session.scalar(
                    select(func.count()).where(
                        models.Strategy.id.in_(strategy_ids), models.Strategy.last_bar_at >= bar
                    )
                )
                if evaluated != len(strategy_ids):
                    return False
                unplaced = await session.scalar(
                    select(func.count()).where(
                        models.Signal.strategy_id.in_(strategy_ids),
                        models.Signal.order_id.is_(None),
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
            book = matcher.book(SYMBOL)
            return all(book is not None and order_id in book for order_id in waiting)

        await eventually(done, f"the live path acted on the bar of {bar.isoformat()}")

    return settled


async def replay_the_day(services: Services) -> tuple[Recording, dict[StrategyKind, int]]:
    specs = {spec.code: spec for spec in services.catalog.all()}
    now = datetime.now(UTC)
    window = TimeWindow.around(now, services.settings.max_tick_age_years, timedelta(0))
    ticks = read_csv_file(RECORDING, specs, window)
    # Whole days keep every bucket; a minute of margin keeps every stamp in the future.
    days = math.ceil((now + timedelta(minutes=1) - ticks[0].time) / timedelta(days=1))
    recording = Recording(ticks, timedelta(days=days))
    # so every order placed on a bar's close has a later tick to meet
    assert not recording.closes_bar(len(ticks) - 1)
    matcher = PaperMatcher(
        services.sessions,
        services.hub,
        services.catalog,
        services.orders,
        services.orders.risk_policy,
        resync_every=3600,  # the book follows orders.new only, so tick/order order holds
        activity=services.activity,
    )
    engine = strategy_engine(services, poll_interval=0.1, timer_interval=0.05)
    async with running(matcher.run), running(engine.run):
        ids = await started_strategies(services, engine)
        clock = PacedClock(recording, settled_check(services, matcher, list(ids.values())))
        source = await replay_source(services, clock=clock.replay_clock())
        await source.run(services.ingestor)
        assert source.passes == 1

        async def all_filled() -> bool:
            async with services.sessions() as session:
                waiting = await session.scalar(
                    select(func.count()).where(
                        models.Order.symbol_code == SYMBOL, models.Order.status == "NEW"
                    )
                )
            return waiting == 0

        await eventually(all_filled, "the matcher filled every order a later tick can fill")
    return recording, ids


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


async def test_a_recorded_day_gives_the_same_signals_live_and_in_a_backtest(
    services: Services,
) -> None:
    # given a recorded day replayed through the live path, one strategy of every kind
    recording, ids = await replay_the_day(services)
    ticks, shift = recording.ticks, recording.shift

    for kind, strategy_id in ids.items():
        # when the same strategy is backtested over the bars of the stored ticks
        request = BacktestRequest(
            kind=kind.value,
            parameters=PARAMETERS[kind],
            symbol=SYMBOL,
            start=ticks[0].time + shift - timedelta(days=1),
            end=ticks[-1].time + shift + timedelta(days=1),
            interval=INTERVAL,
            commission_rate=Decimal(0),
            fixed_quantity=LOT,
        )
        prepared, errors = await prepare_backtest(
            services.sessions, services.catalog, services.timeseries, request
        )
        assert prepared is not None, errors
        bars = prepared.bars
        times = [bars.time_at(i) for i in range(len(bars))]
        # then the bars are the recording's, bucket for bucket
        assert [(times[i], bars.open_price(i), bars.close_price(i)) for i in range(len(bars))] == (
            recorded_bars(recording)
        )
        raw = signals(kind.value, PARAMETERS[kind], bars.close, bars.high, bars.low)
        backtest_signals = [
            ("BUY" if raw[i] > 0 else "SELL", i) for i in range(len(bars)) if raw[i] != 0
        ]
        assert len(backtest_signals) >= 6, f"{kind}: the day should cross several times"

        # and live emitted the backtest's signals, in order, except on the bar still
        # forming at the end, which live never evaluated
        signals_live = await live_signals(services, strategy_id)
        index_of = {moment: i for i, moment in enumerate(times)}
        live = [(row.side, index_of[row.bar_time]) for row in signals_live]
        last = len(bars) - 1
        assert live == [(side, i) for side, i in backtest_signals if i < last], kind
        async with services.sessions() as session:
            row = await session.get(models.Strategy, strategy_id)
            assert row is not None
            assert row.last_bar_at == times[last - 1]
        assert {row.price for row in signals_live} <= set(bars.exact_close or ())

        # and each signal's lot filled at the bid/ask of the tick after the one that
        # closed its bar (that closing tick is the next bar's open)
        for signal in signals_live:
            assert signal.order_id is not None
            order, trades = await fill_of(services, signal.order_id)
            assert (order.side, order.type, order.quantity, order.status) == (
                signal.side,
                "MARKET",
                LOT,
                "FILLED",
            ), kind
            closing = recording.closing_tick(signal.bar_time)
            assert closing is not None
            assert ticks[closing].last == bars.open_price(index_of[signal.bar_time] + 1)
            after = ticks[closing + 1]
            assert [(t.side, t.quantity, t.price, t.tick_time) for t in trades] == [
                (
                    signal.side,
                    LOT,
                    after.ask if signal.side == "BUY" else after.bid,
                    after.time + shift,
                )
            ], kind

        # and the backtest filled the long-only subsequence of those signals at the
        # next bar's open, one lot each, closing what is open at the last close
        outcome = await run_backtest(
            services.sessions, services.catalog, services.timeseries, request
        )
        assert outcome.result is not None, outcome.errors
        acted = long_only_fills([(side, i) for side, i in backtest_signals if i < last])
        fills = [(i + 1, bars.open_price(i + 1)) for _, i in acted]
        if len(fills) % 2:
            fills.append((last, bars.close_price(last)))  # still long after the last bar
        expected = [
            ("LONG", LOT, times[entry], entry_price, times[exit_], exit_price)
            for (entry, entry_price), (exit_, exit_price) in zip(
                fills[::2], fills[1::2], strict=True
            )
        ]
        assert [_shape(trade) for trade in outcome.result.trades] == expected, kind


def _shape(trade: Trade) -> tuple[str, Decimal, datetime, Decimal, datetime, Decimal]:
    return (
        trade.side,
        trade.quantity,
        trade.entry_time,
        trade.entry_price,
        trade.exit_time,
        trade.exit_price,
    )
