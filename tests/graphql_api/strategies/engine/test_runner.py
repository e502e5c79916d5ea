"""One strategy runner against the real database and store: warm-up, signals, restarts.

Bars are 1m bars of BTCUSDT, 30 minutes in the past, two ticks each (an
opening tick at :05 and the closing tick at :50). Ticks are written to the
store and handed to the runner as the engine would, with ``now`` one second
after each tick, so each bar closes when the next bar's first tick arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from graphql_api.platform.settings import Settings
from graphql_api.realtime.channels import signal_channel
from graphql_api.realtime.events import decode_id_event
from graphql_api.services import Services
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.engine.runner import RunningStrategy, StrategyRunner
from graphql_api.strategies.lifecycle import start_strategy, stop_strategy
from graphql_api.strategies.rules import signals
from storage import models
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import EPOCH, floor_to_interval
from tests.conftest import make_settings

SYMBOL = "BTCUSDT"
PARAMETERS = {"fast": 2, "slow": 3}
# SMA(2) vs SMA(3) on these closes: below, ..., crosses above on bar 5, equal on
# bar 7, below on bar 8 (a cross below from "equal").
CLOSES = [10, 9, 8, 7, 6, 9, 10, 8, 7]
BUY_BAR, SELL_BAR = 5, 8
GRACE = timedelta(seconds=2)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The runtime's own strategy engine stays off: these tests drive strategies themselves."""
    return make_settings(database_url, STRATEGY_ENGINE_ENABLED="false")


def price(level: int) -> Decimal:
    return Decimal(95_000 + 10 * level).quantize(Decimal("0.01"))


@pytest.fixture
def base() -> datetime:
    return floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1) - timedelta(minutes=30)


def bar_ticks(base: datetime, index: int, close: int) -> list[Tick]:
    start = base + timedelta(minutes=index)
    opening, closing = price(close + 1), price(close)
    return [
        Tick(SYMBOL, start + timedelta(seconds=5), opening, opening, opening, Decimal("0.5")),
        Tick(SYMBOL, start + timedelta(seconds=50), closing, closing, closing, Decimal("0.25")),
    ]


async def play(
    services: Services,
    runners: Sequence[StrategyRunner],
    base: datetime,
    closes: dict[int, int],
    *,
    store: bool = True,
) -> None:
    for index, close in sorted(closes.items()):
        ticks = bar_ticks(base, index, close)
        if store:
            await services.timeseries.write_ticks(ticks)
        for item in ticks:
            for runner in runners:
                await runner.on_tick(item, item.time + timedelta(seconds=1))


def after_bar(base: datetime, index: int) -> datetime:
    """A moment at which bar ``index`` has closed by the clock."""
    return base + timedelta(minutes=index + 1) + GRACE


async def create_running(services: Services, *, auto_trade: bool = False) -> int:
    outcome = await services.strategies.create(
        services.demo_user_id,
        StrategyDraft(
            name="cross",
            kind=StrategyKind.SMA_CROSS,
            symbol=SYMBOL,
            interval=KlineInterval.MINUTE_1,
            parameters=PARAMETERS,
            auto_trade=auto_trade,
        ),
    )
    assert outcome.strategy is not None, outcome.errors
    started = await start_strategy(
        services.sessions, services.outbox, services.demo_user_id, outcome.strategy.id
    )
    assert not started.errors
    return outcome.strategy.id


async def runner_for(
    services: Services, strategy_id: int, now: datetime, *, max_replay_bars: int = 100_000
) -> StrategyRunner:
    async with services.sessions() as session:
        row = await session.get(models.Strategy, strategy_id)
    assert row is not None
    runner = StrategyRunner(
        RunningStrategy.from_row(row),
        sessions=services.sessions,
        timeseries=services.timeseries,
        catalog=services.catalog,
        outbox=services.outbox,
        orders=services.orders,
        activity=services.activity,
        grace=GRACE,
        max_replay_bars=max_replay_bars,
    )
    await runner.start(now)
    return runner


async def stored_signals(services: Services, strategy_id: int) -> list[models.Signal]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(models.Signal)
            .where(models.Signal.strategy_id == strategy_id)
            .order_by(models.Signal.bar_time)
        )
        return list(rows)


async def last_bar_at(services: Services, strategy_id: int) -> datetime | None:
    async with services.sessions() as session:
        row = await session.get(models.Strategy, strategy_id)
    assert row is not None
    return row.last_bar_at


class Published(list[dict[str, object]]):
    """Events in arrival order; ``arrived`` is set at each one."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()


@pytest.fixture
async def published(services: Services) -> AsyncIterator[Published]:
    """Every event on the demo user's signal channel, as it arrives."""
    events = Published()

    async def collect() -> None:
        async with services.hub.subscribe(
            [signal_channel(services.demo_user_id)], conflate=False
        ) as box:
            ready.set()
            while True:
                events.append(decode_id_event((await box.get()).message))
                events.arrived.set()

    ready = asyncio.Event()
    task = asyncio.create_task(collect())
    await ready.wait()
    try:
        yield events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settle() -> None:
    """Let the in-process broadcast deliver what was published."""
    for _ in range(20):
        await asyncio.sleep(0)


async def wait_published(published: Published, count: int) -> None:
    """Wait until ``count`` events arrived, then a little longer for any extra one.

    Announcements travel through the outbox relay (a database read after the commit),
    so under load they arrive some loop turns after the signal is stored.
    """
    async with asyncio.timeout(10):
        while len(published) < count:
            published.arrived.clear()
            await published.arrived.wait()
    await asyncio.sleep(0.2)


async def test_a_crossing_tick_sequence_emits_exactly_the_expected_signals(
    services: Services, base: datetime, published: Published
) -> None:
    # given a running SMA_CROSS(2, 3) with no stored history
    strategy_id = await create_running(services)
    runner = await runner_for(services, strategy_id, base)
    # when the bars are played and the last one closes by the clock
    await play(services, [runner], base, dict(enumerate(CLOSES)))
    await runner.on_timer(after_bar(base, len(CLOSES) - 1))
    await settle()
    # then exactly a BUY on bar 5 and a SELL on bar 8 are stored, with their reasons
    rows = await stored_signals(services, strategy_id)
    assert [(r.side, r.bar_time, r.reason, r.price) for r in rows] == [
        ("BUY", base + timedelta(minutes=BUY_BAR), "SMA(2) crossed above SMA(3)", price(9)),
        ("SELL", base + timedelta(minutes=SELL_BAR), "SMA(2) crossed below SMA(3)", price(7)),
    ]
    # and they are the bars the whole-series rule (backtests) picks
    expected = signals("SMA_CROSS", PARAMETERS, [float(price(c)) for c in CLOSES])
    assert np.flatnonzero(expected).tolist() == [BUY_BAR, SELL_BAR]
    # and each was published once, after it was stored
    await wait_published(published, len(rows))
    assert [(e["id"], e["strategyId"], e["symbol"]) for e in published] == [
        (row.id, strategy_id, SYMBOL) for row in rows
    ]
    assert await last_bar_at(services, strategy_id) == base + timedelta(minutes=len(CLOSES) - 1)


async def test_warm_up_replay_emits_nothing_even_over_a_cross(
    services: Services, base: datetime, published: Published
) -> None:
    # given stored history that contains the BUY cross of bar 5
    for index, close in enumerate(CLOSES[:7]):
        await services.timeseries.write_ticks(bar_ticks(base, index, close))
    strategy_id = await create_running(services)
    # when the strategy starts after those bars closed
    runner = await runner_for(services, strategy_id, after_bar(base, 6))
    await settle()
    # then nothing is emitted, and it is live from the last stored bar
    assert await stored_signals(services, strategy_id) == []
    assert published == []
    assert await last_bar_at(services, strategy_id) == base + timedelta(minutes=6)
    # and its state is warm: the next bars produce the SELL of bar 8 at once
    await play(services, [runner], base, {7: CLOSES[7], 8: CLOSES[8]})
    await runner.on_timer(after_bar(base, 8))
    rows = await stored_signals(services, strategy_id)
    assert [(r.side, r.bar_time) for r in rows] == [("SELL", base + timedelta(minutes=SELL_BAR))]


async def test_a_restart_replays_up_to_last_bar_at_and_never_re_emits(
    services: Services, base: datetime, published: Published
) -> None:
    # given a runner that emitted the BUY and then died in the middle of bar 7
    strategy_id = await create_running(services)
    first = await runner_for(services, strategy_id, base)
    await play(services, [first], base, {i: CLOSES[i] for i in range(7)})
    await play(services, [first], base, {7: CLOSES[7]})
    assert await last_bar_at(services, strategy_id) == base + timedelta(minutes=6)
    # when a new runner starts from the stored row (bar 7 still open)
    restarted = await runner_for(services, strategy_id, base + timedelta(minutes=7, seconds=55))
    # then it emits nothing for bars up to last_bar_at
    assert len(await stored_signals(services, strategy_id)) == 1
    # and continues with the bar it found open, emitting only the new SELL
    await play(services, [restarted], base, {8: CLOSES[8]})
    await restarted.on_timer(after_bar(base, 8))
    await settle()
    rows = await stored_signals(services, strategy_id)
    assert [r.side for r in rows] == ["BUY", "SELL"]
    await wait_published(published, 2)
    assert len(published) == 2


async def evaluated_from(services: Services, strategy_id: int) -> datetime | None:
    async with services.sessions() as session:
        row = await session.get(models.Strategy, strategy_id)
    assert row is not None
    return row.evaluated_from


def minute(index: int, base: datetime) -> datetime:
    return base + timedelta(minutes=index)


async def test_a_restart_replays_every_bar_since_the_strategy_went_live(
    services: Services, base: datetime
) -> None:
    # given bars 0..6 stored, a strategy that went live after them (warm-up: 3 bars)
    for index, close in enumerate(CLOSES[:7]):
        await services.timeseries.write_ticks(bar_ticks(base, index, close))
    strategy_id = await create_running(services)
    first = await runner_for(services, strategy_id, after_bar(base, 6))
    # then it warmed up on bars 4..6 and recorded bar 4 as where its state begins
    assert (first.replayed, first.replayed_from) == (3, minute(4, base))
    assert await evaluated_from(services, strategy_id) == minute(4, base)
    # and when it evaluated bars 7 and 8 live and the engine restarts
    await play(services, [first], base, {7: CLOSES[7], 8: CLOSES[8]})
    await first.on_timer(after_bar(base, 8))
    assert await last_bar_at(services, strategy_id) == minute(8, base)
    restarted = await runner_for(services, strategy_id, after_bar(base, 8))
    # then the new runner replays every bar the first one fed: 4..8, not the last 3
    assert (restarted.replayed, restarted.replayed_from) == (5, minute(4, base))
    assert await evaluated_from(services, strategy_id) == minute(4, base)


async def test_the_replay_is_capped_at_max_replay_bars_but_never_below_the_warm_up(
    services: Services, base: datetime
) -> None:
    # given a strategy live since bar 0 that evaluated bars up to 8
    strategy_id = await create_running(services)
    first = await runner_for(services, strategy_id, base)
    await play(services, [first], base, dict(enumerate(CLOSES)))
    await first.on_timer(after_bar(base, 8))
    # (it went live with no closed bar: its state begins with whatever closes first)
    assert await evaluated_from(services, strategy_id) == EPOCH
    now = after_bar(base, 8)
    # when engines restart with different caps
    uncapped = await runner_for(services, strategy_id, now)
    capped = await runner_for(services, strategy_id, now, max_replay_bars=4)
    tiny = await runner_for(services, strategy_id, now, max_replay_bars=1)
    # then each replays the latest bars up to its cap, and at least the warm-up (3)
    assert (uncapped.replayed, uncapped.replayed_from) == (9, minute(0, base))
    assert (capped.replayed, capped.replayed_from) == (4, minute(5, base))
    assert (tiny.replayed, tiny.replayed_from) == (3, minute(6, base))
    # and none of them emitted anything again
    assert [r.side for r in await stored_signals(services, strategy_id)] == ["BUY", "SELL"]


async def test_a_row_live_before_evaluated_from_existed_records_it_on_its_next_start(
    services: Services, base: datetime
) -> None:
    # given a strategy that evaluated bars up to 8 and whose row has no evaluated_from
    strategy_id = await create_running(services)
    first = await runner_for(services, strategy_id, base)
    await play(services, [first], base, dict(enumerate(CLOSES)))
    await first.on_timer(after_bar(base, 8))
    async with services.sessions() as session:
        await session.execute(
            update(models.Strategy)
            .where(models.Strategy.id == strategy_id)
            .values(evaluated_from=None)
        )
        await session.commit()
    # when the engine restarts
    legacy = await runner_for(services, strategy_id, after_bar(base, 8))
    # then it warms up on the last warmup_bars bars, as before, and records where
    assert (legacy.replayed, legacy.replayed_from) == (3, minute(6, base))
    assert await evaluated_from(services, strategy_id) == minute(6, base)
    # and the next restart replays from there
    again = await runner_for(services, strategy_id, after_bar(base, 8))
    assert (again.replayed, again.replayed_from) == (3, minute(6, base))


async def test_stop_and_start_is_a_fresh_start(services: Services, base: datetime) -> None:
    # given a strategy live since bar 0 that evaluated bars up to 8
    strategy_id = await create_running(services)
    first = await runner_for(services, strategy_id, base)
    await play(services, [first], base, dict(enumerate(CLOSES)))
    await first.on_timer(after_bar(base, 8))
    # when it is stopped and started again
    for transition in (stop_strategy, start_strategy):
        outcome = await transition(
            services.sessions, services.outbox, services.demo_user_id, strategy_id
        )
        assert not outcome.errors
    # then the start forgot where its state began and where it stopped
    assert await evaluated_from(services, strategy_id) is None
    assert await last_bar_at(services, strategy_id) is None
    # and its runner goes live again, warmed up on the last warmup_bars bars only
    fresh = await runner_for(services, strategy_id, after_bar(base, 8))
    assert (fresh.replayed, fresh.replayed_from) == (3, minute(6, base))
    assert await evaluated_from(services, strategy_id) == minute(6, base)
    assert await last_bar_at(services, strategy_id) == minute(8, base)


async def test_bars_closed_while_down_are_caught_up_once(
    services: Services, base: datetime
) -> None:
    # given a runner that stopped after bar 5 (its BUY emitted)
    strategy_id = await create_running(services)
    first = await runner_for(services, strategy_id, base)
    await play(services, [first], base, {i: CLOSES[i] for i in range(7)})
    # and bars 7..8 that arrived while no engine ran (closed by a tick of bar 9)
    await play(services, [], base, {7: CLOSES[7], 8: CLOSES[8], 9: 8})
    # when the engine starts again in the middle of bar 9
    await runner_for(services, strategy_id, base + timedelta(minutes=9, seconds=55))
    # then bars 7 and 8 are evaluated: the SELL of bar 8 is emitted, once
    rows = await stored_signals(services, strategy_id)
    assert [r.side for r in rows] == ["BUY", "SELL"]
    assert await last_bar_at(services, strategy_id) == base + timedelta(minutes=8)
    await runner_for(services, strategy_id, base + timedelta(minutes=9, seconds=56))
    assert len(await stored_signals(services, strategy_id)) == 2


async def test_two_runners_of_one_strategy_emit_each_signal_once(
    services: Services, base: datetime, published: Published
) -> None:
    # given two engines running the same strategy (a leader that lost its lock
    # and the new one), fed the same ticks
    strategy_id = await create_running(services)
    one = await runner_for(services, strategy_id, base)
    two = await runner_for(services, strategy_id, base)
    await play(services, [one, two], base, dict(enumerate(CLOSES)))
    for runner in (one, two):
        await runner.on_timer(after_bar(base, len(CLOSES) - 1))
    await settle()
    # then each signal exists once and was published once
    rows = await stored_signals(services, strategy_id)
    assert [r.side for r in rows] == ["BUY", "SELL"]
    await wait_published(published, len(rows))
    assert sorted(int(str(e["id"])) for e in published) == sorted(r.id for r in rows)


async def test_a_signal_for_an_evaluated_bar_cannot_be_stored_twice(
    services: Services, base: datetime, published: Published
) -> None:
    # given the BUY of bar 5 emitted
    strategy_id = await create_running(services)
    runner = await runner_for(services, strategy_id, base)
    await play(services, [runner], base, {i: CLOSES[i] for i in range(7)})
    (buy,) = await stored_signals(services, strategy_id)
    # when a stale view (last_bar_at rewound to bar 4) evaluates bar 5 again
    async with services.sessions() as session:
        await session.execute(
            update(models.Strategy)
            .where(models.Strategy.id == strategy_id)
            .values(last_bar_at=base + timedelta(minutes=4))
        )
        await session.commit()
    await runner_for(services, strategy_id, after_bar(base, 6))
    await settle()
    # then the unique (strategy, bar) constraint keeps the one row, published once
    assert [r.id for r in await stored_signals(services, strategy_id)] == [buy.id]
    await wait_published(published, 1)
    assert [e["id"] for e in published] == [buy.id]
    assert await last_bar_at(services, strategy_id) == base + timedelta(minutes=6)
    # and the database itself refuses a second row for the bar
    async with services.sessions() as session:
        session.add(
            models.Signal(
                strategy_id=strategy_id,
                symbol_code=SYMBOL,
                side="BUY",
                price=buy.price,
                bar_time=buy.bar_time,
                reason="again",
                created_at=datetime.now(UTC),
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_a_stopped_strategy_emits_nothing_more(services: Services, base: datetime) -> None:
    strategy_id = await create_running(services)
    runner = await runner_for(services, strategy_id, base)
    await play(services, [runner], base, {i: CLOSES[i] for i in range(5)})
    # when the user stops it before the crossing bar closes
    await stop_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)
    await play(services, [runner], base, {5: CLOSES[5], 6: CLOSES[6]})
    # then no signal is stored and the runner knows it is finished
    assert await stored_signals(services, strategy_id) == []
    assert runner.stopped


async def test_auto_trade_places_one_lot_market_orders_and_links_them(
    services: Services, base: datetime
) -> None:
    strategy_id = await create_running(services, auto_trade=True)
    runner = await runner_for(services, strategy_id, base)
    await play(services, [runner], base, {i: CLOSES[i] for i in range(7)})
    (signal,) = await stored_signals(services, strategy_id)
    assert signal.order_id is not None
    async with services.sessions() as session:
        order = await session.get(models.Order, signal.order_id)
    assert order is not None
    assert (order.side, order.type, order.quantity, order.strategy_id) == (
        "BUY",
        "MARKET",
        Decimal("0.00001"),  # one BTCUSDT lot
        strategy_id,
    )
    assert order.client_order_id == f"signal-{signal.id}"


async def test_auto_trade_skips_signals_on_stale_bars(services: Services, base: datetime) -> None:
    # given bars that closed half an hour ago, evaluated only now on start-up
    strategy_id = await create_running(services, auto_trade=True)
    first = await runner_for(services, strategy_id, base)
    await play(services, [first], base, {i: CLOSES[i] for i in range(5)})
    await play(services, [], base, {5: CLOSES[5], 6: CLOSES[6]})
    await runner_for(services, strategy_id, datetime.now(UTC))
    # then the signal is recorded but no order is placed on it
    (signal,) = await stored_signals(services, strategy_id)
    assert signal.side == "BUY" and signal.order_id is None


async def test_a_daily_strategy_warms_up_on_the_daily_table_and_closes_at_midnight(
    services: Services,
) -> None:
    # given the seeded daily history of 600519.SH, up to yesterday
    async with services.sessions() as session:
        history = list(
            await session.scalars(
                select(models.DailyBar)
                .where(models.DailyBar.symbol_code == "600519.SH")
                .order_by(models.DailyBar.day)
            )
        )
    closes = [float(row.close) for row in history]
    fast, slow = np.mean(closes[-2:]), np.mean(closes[-3:])
    # a close far enough to force a cross today, in whichever direction is open
    side, target = (
        ("BUY", history[-1].close * 2) if fast <= slow else ("SELL", history[-1].close / 2)
    )
    today = floor_to_interval(datetime.now(UTC), KlineInterval.DAY_1)
    created = await services.strategies.create(
        services.demo_user_id,
        StrategyDraft(
            name="daily",
            kind=StrategyKind.SMA_CROSS,
            symbol="600519.SH",
            interval=KlineInterval.DAY_1,
            parameters=PARAMETERS,
        ),
    )
    assert created.strategy is not None
    strategy_id = created.strategy.id
    await start_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)
    # when it starts today, then today's ticks arrive and midnight passes
    runner = await runner_for(services, strategy_id, today + timedelta(hours=1))
    assert await last_bar_at(services, strategy_id) == datetime.combine(
        history[-1].day, datetime.min.time(), tzinfo=UTC
    )
    close = target.quantize(Decimal("0.01"))
    ticks = [
        Tick("600519.SH", today + timedelta(hours=h), p, p, p, Decimal(100))
        for h, p in ((1, history[-1].close), (2, close))
    ]
    await services.timeseries.write_ticks(ticks)
    for item in ticks:
        await runner.on_tick(item, item.time)
    await runner.on_timer(today + timedelta(days=1) - timedelta(seconds=1))
    assert await stored_signals(services, strategy_id) == []
    await runner.on_timer(today + timedelta(days=1) + GRACE)
    # then today's bar, closed at midnight UTC, carries the signal
    (signal,) = await stored_signals(services, strategy_id)
    assert (signal.side, signal.bar_time, signal.price) == (side, today, close)
    # and a restart rebuilds today's bar from the ticks without emitting it again,
    # replaying every day since the three warm-up days it went live on
    restarted = await runner_for(services, strategy_id, today + timedelta(days=1, minutes=1))
    assert len(await stored_signals(services, strategy_id)) == 1
    assert await last_bar_at(services, strategy_id) == today
    warm_up_start = datetime.combine(history[-3].day, datetime.min.time(), tzinfo=UTC)
    assert await evaluated_from(services, strategy_id) == warm_up_start
    assert (restarted.replayed, restarted.replayed_from) == (4, warm_up_start)
