"""One contract for every time-series backend: SQLite, PostgreSQL and TDengine.

TDengine cannot be installed from the registries these machines reach, so its
run needs ``TEST_TDENGINE_URL`` pointing at a server; without it those cases are
skipped with that reason (the one allowed skip in the suite).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from storage.decimal_text import plain_text_at_scale
from storage.engine import create_engine
from storage.timeseries import Bar, KlineInterval, Tick, TimeSeriesStore, TimeSeriesWriteError
from storage.timeseries.base import AmountPlaces, BatchKey, BatchOutcome, TickBatch
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.conftest import sql_database

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # a Monday, 09:30 in Shanghai

TDENGINE_SKIP = pytest.mark.skipif(
    not os.environ.get("TEST_TDENGINE_URL"),
    reason="TEST_TDENGINE_URL not set: TDengine tests need a running TDengine 3.3 server",
)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("tdengine", marks=[pytest.mark.tdengine, TDENGINE_SKIP]),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TimeSeriesStore]:
    if request.param == "tdengine":
        from storage.timeseries.tdengine import TDengineTimeSeriesStore

        base = os.environ["TEST_TDENGINE_URL"].rstrip("/")
        url = f"{base.rsplit('/', 1)[0]}/qg_test_{uuid.uuid4().hex[:8]}"
        tdengine = await TDengineTimeSeriesStore.open(url, vgroups=1)
        try:
            yield tdengine
        finally:
            await tdengine.drop_database()
            await tdengine.close()
        return
    async with sql_database(request, request.param) as database_url:
        engine = create_engine(database_url)
        try:
            yield SqlTimeSeriesStore(engine)
        finally:
            await engine.dispose()


def tick(
    symbol: str,
    seconds: float,
    last: str,
    volume: str = "1",
    bid: str | None = None,
    ask: str | None = None,
) -> Tick:
    return Tick(
        symbol,
        T0 + timedelta(seconds=seconds),
        Decimal(last),
        Decimal(bid or last),
        Decimal(ask or last),
        Decimal(volume),
    )


# A day's worth of structure in a few ticks: two symbols, gaps, bucket edges.
TICKS = [
    tick("600519.SH", 0, "1500.00", "100"),
    tick("600519.SH", 10.5, "1501.50", "200"),
    tick("600519.SH", 59.999999, "1499.99", "300"),
    tick("600519.SH", 60, "1502.00", "100"),  # exactly on the next minute
    tick("600519.SH", 299, "1503.00", "100"),
    tick("600519.SH", 300, "1490.10", "500"),  # next 5m bucket
    tick("600519.SH", 3600 + 5, "1510.00", "100"),  # next hour
    tick("BTCUSDT", 1, "95000.01", "0.00001", "95000.00", "95000.02"),
    tick("BTCUSDT", 2, "94999.99", "1.23456789"),
]


async def test_ticks_round_trip_exactly_and_in_order(store: TimeSeriesStore) -> None:
    awkward = [
        tick("DOGEUSDT", 0, "0.00001", "123456789"),
        tick("DOGEUSDT", 1, "99999999.99999", "0.00000001"),
        tick("XRPUSDT", 0, "2.1500", "0.1"),
    ]
    await store.write_ticks(TICKS + awkward)
    got = await store.ticks("600519.SH", None, None, 100)
    assert got == [t for t in TICKS if t.symbol == "600519.SH"]
    assert await store.ticks("DOGEUSDT", None, None, 10) == awkward[:2]
    assert (await store.ticks("XRPUSDT", None, None, 10))[0].last == Decimal("2.15")


async def test_tick_limits_and_ranges(store: TimeSeriesStore) -> None:
    await store.write_ticks(TICKS)
    mine = [t for t in TICKS if t.symbol == "600519.SH"]
    # with a start: the first N from it
    assert await store.ticks("600519.SH", T0 + timedelta(seconds=10), None, 2) == mine[1:3]
    # without: the latest N before the end (exclusive), still ascending
    assert await store.ticks("600519.SH", None, T0 + timedelta(seconds=300), 2) == mine[3:5]
    assert await store.ticks("600519.SH", T0 + timedelta(days=1), None, 10) == []
    assert await store.ticks("NOPE", None, None, 10) == []


async def test_latest_ticks_per_symbol(store: TimeSeriesStore) -> None:
    assert await store.latest_ticks(["600519.SH"]) == {}
    await store.write_ticks(TICKS)
    latest = await store.latest_ticks(["600519.SH", "BTCUSDT", "NOPE"])
    assert latest == {"600519.SH": TICKS[6], "BTCUSDT": TICKS[8]}


def bar(seconds: int, o: str, h: str, lo: str, c: str, v: str, n: int) -> Bar:
    return Bar(
        "600519.SH",
        T0 + timedelta(seconds=seconds),
        Decimal(o),
        Decimal(h),
        Decimal(lo),
        Decimal(c),
        Decimal(v),
        n,
    )


EXPECTED = {
    KlineInterval.MINUTE_1: [
        bar(0, "1500.00", "1501.50", "1499.99", "1499.99", "600", 3),
        bar(60, "1502.00", "1502.00", "1502.00", "1502.00", "100", 1),
        bar(240, "1503.00", "1503.00", "1503.00", "1503.00", "100", 1),
        bar(300, "1490.10", "1490.10", "1490.10", "1490.10", "500", 1),
        bar(3600, "1510.00", "1510.00", "1510.00", "1510.00", "100", 1),
    ],
    KlineInterval.MINUTE_5: [
        bar(0, "1500.00", "1503.00", "1499.99", "1503.00", "800", 5),
        bar(300, "1490.10", "1490.10", "1490.10", "1490.10", "500", 1),
        bar(3600, "1510.00", "1510.00", "1510.00", "1510.00", "100", 1),
    ],
    KlineInterval.MINUTE_15: [
        bar(0, "1500.00", "1503.00", "1490.10", "1490.10", "1300", 6),
        bar(3600, "1510.00", "1510.00", "1510.00", "1510.00", "100", 1),
    ],
    # T0 is 01:30 UTC, so the first hour bar starts at 01:00.
    KlineInterval.HOUR_1: [
        bar(-1800, "1500.00", "1503.00", "1490.10", "1490.10", "1300", 6),
        bar(1800, "1510.00", "1510.00", "1510.00", "1510.00", "100", 1),
    ],
}


@pytest.mark.parametrize("interval", list(EXPECTED))
async def test_klines_at_every_interval(store: TimeSeriesStore, interval: KlineInterval) -> None:
    await store.write_ticks(TICKS)
    assert await store.klines("600519.SH", interval, None, None, 100) == EXPECTED[interval]


async def test_kline_ranges_limits_and_empty(store: TimeSeriesStore) -> None:
    await store.write_ticks(TICKS)
    one_minute = EXPECTED[KlineInterval.MINUTE_1]
    # bars belong to a range by their start; a bar starting before `from` is excluded whole
    got = await store.klines(
        "600519.SH", KlineInterval.MINUTE_1, T0 + timedelta(seconds=30), None, 100
    )
    assert got == one_minute[1:]
    assert await store.klines("600519.SH", KlineInterval.MINUTE_1, T0, None, 2) == one_minute[:2]
    assert await store.klines("600519.SH", KlineInterval.MINUTE_1, None, None, 2) == one_minute[3:]
    got = await store.klines(
        "600519.SH", KlineInterval.MINUTE_1, None, T0 + timedelta(seconds=301), 100
    )
    assert got == one_minute[:4]
    assert await store.klines("NOPE", KlineInterval.MINUTE_5, None, None, 10) == []
    assert (
        await store.klines("600519.SH", KlineInterval.MINUTE_5, T0 + timedelta(days=3), None, 10)
        == []
    )


PLAIN_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


async def test_kline_texts_are_the_same_bars_written_as_text(
    store: TimeSeriesStore,
) -> None:
    # given ticks at many scales: tiny, huge, trailing zeros, whole numbers
    awkward = [
        tick("DOGEUSDT", 0, "0.00001", "123456789"),
        tick("DOGEUSDT", 1, "99999999.99999", "0.00000001"),
        tick("DOGEUSDT", 61, "2.1500", "0.10"),
        tick("DOGEUSDT", 62, "3", "7"),
        tick("DOGEUSDT", 3700, "0.000000001", "1000000"),
    ]
    await store.write_ticks(TICKS + awkward)
    for symbol in ("600519.SH", "BTCUSDT", "DOGEUSDT"):
        for interval in EXPECTED:
            for start, end, limit in ((None, None, 100), (T0 + timedelta(seconds=30), None, 2)):
                bars = await store.klines(symbol, interval, start, end, limit)
                for places in (AmountPlaces(0, 0), AmountPlaces(2, 4), AmountPlaces(9, 12)):
                    texts = await store.kline_texts(symbol, interval, start, end, limit, places)
                    # then the same bars, in the same order, the times as the API writes them
                    assert [(t.time, t.trade_count) for t in texts] == [
                        (b.time.isoformat(), b.trade_count) for b in bars
                    ]
                    for text, bar in zip(texts, bars, strict=True):
                        for name in ("open", "high", "low", "close", "volume"):
                            written: str = getattr(text, name)
                            value: Decimal = getattr(bar, name)
                            # plain notation (digits, at most one point, no leading
                            # zeros, no exponent), the same value, at the API's scale
                            assert PLAIN_DECIMAL.fullmatch(written), written
                            assert Decimal(written) == value
                            place = places.quantity if name == "volume" else places.price
                            assert written == plain_text_at_scale(format(value, "f"), place)
    nothing = await store.kline_texts(
        "NOPE", KlineInterval.MINUTE_1, None, None, 10, AmountPlaces(2, 2)
    )
    assert nothing == []


async def test_a_failed_batch_writes_nothing(store: TimeSeriesStore) -> None:
    bad = Tick("600519.SH", T0, Decimal("NaN"), Decimal(1), Decimal(1), Decimal(1))
    with pytest.raises(TimeSeriesWriteError):
        await store.write_ticks([TICKS[0], bad, TICKS[1]])
    assert await store.ticks("600519.SH", None, None, 10) == []


async def test_batches_out_of_order_give_the_same_bars(store: TimeSeriesStore) -> None:
    # the same ticks, written as batches arriving out of time order
    # (a late batch reopens a minute; equal times keep their write order)
    late_first = [TICKS[4], TICKS[5], TICKS[6]], [TICKS[0], TICKS[1]], [TICKS[2], TICKS[3]]
    for batch in late_first:
        await store.write_ticks(batch)
    for interval, expected in EXPECTED.items():
        assert await store.klines("600519.SH", interval, None, None, 100) == expected
    tie = [tick("BTCUSDT", 61, "1.00"), tick("BTCUSDT", 61, "2.00")]
    await store.write_ticks(tie[:1])
    await store.write_ticks(tie[1:])
    minute_start = T0 + timedelta(minutes=1)
    [minute] = await store.klines("BTCUSDT", KlineInterval.MINUTE_1, minute_start, None, 1)
    assert (minute.open, minute.close, minute.trade_count) == (Decimal("1.00"), Decimal("2.00"), 2)


# --- equal timestamps: real feeds print several trades in one microsecond -----------------

TRADES = [
    tick("ETHUSDT", 5, "3000.01", "0.5"),
    tick("ETHUSDT", 5, "3000.02", "0.25"),
    tick("ETHUSDT", 5, "2999.99", "1"),
]


async def test_equal_timestamps_in_one_batch_are_all_kept_in_write_order(
    store: TimeSeriesStore,
) -> None:
    await store.write_ticks([tick("ETHUSDT", 4, "2999.00"), *TRADES, tick("ETHUSDT", 6, "3001")])
    got = await store.ticks("ETHUSDT", T0 + timedelta(seconds=5), None, 10)
    assert got[:3] == TRADES
    # the latest N cut through the tie from the newest end, still ascending
    assert await store.ticks("ETHUSDT", None, T0 + timedelta(seconds=6), 2) == TRADES[1:]
    [minute] = await store.klines("ETHUSDT", KlineInterval.MINUTE_1, T0, None, 1)
    assert (minute.open, minute.high, minute.low, minute.close) == (
        Decimal("2999.00"),
        Decimal("3001"),
        Decimal("2999.00"),
        Decimal("3001"),
    )
    assert (minute.volume, minute.trade_count) == (Decimal("3.75"), 5)


async def test_equal_timestamps_across_batches_are_all_kept_in_write_order(
    store: TimeSeriesStore,
) -> None:
    for trade in TRADES:
        await store.write_ticks([trade])
    assert await store.ticks("ETHUSDT", None, None, 10) == TRADES
    assert (await store.latest_ticks(["ETHUSDT"]))["ETHUSDT"] == TRADES[-1]
    [minute] = await store.klines("ETHUSDT", KlineInterval.MINUTE_1, None, None, 1)
    assert (minute.open, minute.close, minute.trade_count) == (
        Decimal("3000.01"),
        Decimal("2999.99"),
        3,
    )


async def test_a_retried_keyed_batch_is_stored_once(store: TimeSeriesStore) -> None:
    key = BatchKey(owner_id=1, batch_id="feed-000001", digest="same ticks")
    first = await store.write_batches([TickBatch(TRADES, key)])
    # the client did not hear back and sends the very same batch again
    again = await store.write_batches([TickBatch(list(TRADES), key)])
    assert first == [BatchOutcome.STORED]
    # TDengine records no keys (the retry overwrites its own rows), SQL says REPLAYED
    assert again[0] in (BatchOutcome.REPLAYED, BatchOutcome.STORED)
    assert await store.ticks("ETHUSDT", None, None, 10) == TRADES
    [minute] = await store.klines("ETHUSDT", KlineInterval.MINUTE_1, None, None, 1)
    assert minute.trade_count == 3
