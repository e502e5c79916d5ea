"""Closed bars from a tick stream: bucket edges, closing rules, late ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from graphql_api.strategies.engine.bars import BarBuilder
from storage.timeseries import Bar, KlineInterval, Tick

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)  # a 1m, 5m, 15m and 1h boundary


def tick(at: datetime, last: str, volume: str = "1", symbol: str = "BTCUSDT") -> Tick:
    price = Decimal(last)
    return Tick(symbol, at, price, price, price, Decimal(volume))


def feed(builder: BarBuilder, ticks: list[Tick], received_at: datetime | None = None) -> list[Bar]:
    closed: list[Bar] = []
    for item in ticks:
        closed += builder.on_tick(item, received_at=received_at or item.time)
    return closed


def test_a_tick_of_the_next_bucket_closes_the_bar_with_ohlcv() -> None:
    # given ticks inside one minute
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1)
    seconds = timedelta(seconds=1)
    ticks = [
        tick(T0 + 5 * seconds, "100.00", "2"),
        tick(T0 + 20 * seconds, "103.50", "1"),
        tick(T0 + 40 * seconds, "99.10", "3"),
        tick(T0 + 59 * seconds, "101.00", "4"),
    ]
    # when they arrive, nothing closes
    assert feed(builder, ticks) == []
    # then the first tick of the next minute closes exactly that bar
    closed = feed(builder, [tick(T0 + 60 * seconds, "102.00")])
    assert closed == [
        Bar(
            "BTCUSDT",
            T0,
            Decimal("100.00"),
            Decimal("103.50"),
            Decimal("99.10"),
            Decimal("101.00"),
            Decimal("10"),
            4,
        )
    ]
    assert builder.open_bucket == T0 + timedelta(minutes=1)


def test_buckets_are_epoch_aligned_for_every_interval() -> None:
    moment = datetime(2024, 3, 1, 10, 47, 31, tzinfo=UTC)
    expected = {
        KlineInterval.MINUTE_1: datetime(2024, 3, 1, 10, 47, tzinfo=UTC),
        KlineInterval.MINUTE_5: datetime(2024, 3, 1, 10, 45, tzinfo=UTC),
        KlineInterval.MINUTE_15: datetime(2024, 3, 1, 10, 45, tzinfo=UTC),
        KlineInterval.HOUR_1: datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        KlineInterval.DAY_1: datetime(2024, 3, 1, 0, 0, tzinfo=UTC),
    }
    for interval, start in expected.items():
        builder = BarBuilder("BTCUSDT", interval)
        feed(builder, [tick(moment, "1.00")])
        assert builder.open_bucket == start, interval


def test_daily_bars_close_at_midnight_utc() -> None:
    builder = BarBuilder("BTCUSDT", KlineInterval.DAY_1, grace=timedelta(seconds=2))
    feed(builder, [tick(datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC), "5.00")])
    midnight = datetime(2024, 3, 2, tzinfo=UTC)
    assert builder.on_timer(midnight + timedelta(seconds=1)) is None
    closed = builder.on_timer(midnight + timedelta(seconds=2))
    assert closed is not None and closed.time == datetime(2024, 3, 1, tzinfo=UTC)


def test_the_timer_closes_a_bar_after_its_end_plus_grace() -> None:
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1, grace=timedelta(seconds=2))
    feed(builder, [tick(T0 + timedelta(seconds=10), "10.00")])
    end = T0 + timedelta(minutes=1)
    assert builder.on_timer(end) is None
    assert builder.on_timer(end + timedelta(seconds=1.9)) is None
    closed = builder.on_timer(end + timedelta(seconds=2))
    assert closed is not None and closed.close == Decimal("10.00")
    # and a tick of that minute arriving afterwards is late: ignored, counted
    assert feed(builder, [tick(T0 + timedelta(seconds=50), "11.00")]) == []
    assert builder.late_ticks == 1 and builder.open_bucket is None


def test_a_backfill_burst_is_not_split_by_the_timer() -> None:
    # given ticks of a minute long past, arriving now in a burst
    now = T0 + timedelta(hours=1)
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1, grace=timedelta(seconds=2))
    feed(builder, [tick(T0, "10.00")], received_at=now)
    # then the timer waits for a quiet grace after the last arrival
    assert builder.on_timer(now + timedelta(seconds=1)) is None
    feed(
        builder, [tick(T0 + timedelta(seconds=30), "12.00")], received_at=now + timedelta(seconds=1)
    )
    assert builder.on_timer(now + timedelta(seconds=2.5)) is None
    closed = builder.on_timer(now + timedelta(seconds=3))
    assert closed is not None and (closed.open, closed.close) == (
        Decimal("10.00"),
        Decimal("12.00"),
    )


def test_open_and_close_follow_tick_time_not_arrival() -> None:
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1)
    feed(
        builder,
        [
            tick(T0 + timedelta(seconds=30), "2.00"),
            tick(T0 + timedelta(seconds=50), "3.00"),
            tick(T0 + timedelta(seconds=10), "1.00"),  # arrives late within its own bar
        ],
    )
    (closed,) = feed(builder, [tick(T0 + timedelta(minutes=1), "4.00")])
    assert (closed.open, closed.close) == (Decimal("1.00"), Decimal("3.00"))


def test_ticks_of_closed_buckets_and_other_symbols_are_ignored() -> None:
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1, after=T0)
    # a tick of the bucket already evaluated before a restart
    assert feed(builder, [tick(T0 + timedelta(seconds=5), "1.00")]) == []
    assert builder.late_ticks == 1
    feed(builder, [tick(T0 + timedelta(minutes=2), "2.00"), tick(T0, "9.00", symbol="ETHUSDT")])
    # an older bucket than the open one is late as well
    assert feed(builder, [tick(T0 + timedelta(minutes=1), "3.00")]) == []
    assert builder.late_ticks == 2
    assert builder.open_bucket == T0 + timedelta(minutes=2)


def test_gaps_produce_no_empty_bars() -> None:
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1)
    feed(builder, [tick(T0, "1.00")])
    closed = feed(builder, [tick(T0 + timedelta(minutes=10), "2.00")])
    assert [bar.time for bar in closed] == [T0]


def test_a_seeded_partial_bar_continues_with_live_ticks() -> None:
    builder = BarBuilder("BTCUSDT", KlineInterval.MINUTE_1)
    partial = Bar(
        "BTCUSDT",
        T0,
        Decimal("5.00"),
        Decimal("6.00"),
        Decimal("4.00"),
        Decimal("5.50"),
        Decimal("3"),
        3,
    )
    builder.seed(partial, received_at=T0 + timedelta(seconds=30))
    feed(builder, [tick(T0 + timedelta(seconds=40), "6.50", "2")])
    (closed,) = feed(builder, [tick(T0 + timedelta(minutes=1), "7.00")])
    assert (closed.open, closed.high, closed.low, closed.close) == (
        Decimal("5.00"),
        Decimal("6.50"),
        Decimal("4.00"),
        Decimal("6.50"),
    )
    assert closed.volume == Decimal("5") and closed.trade_count == 4
