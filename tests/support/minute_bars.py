"""What the SQL store's minute bars must be: the fold of its stored ticks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import MinuteBarRow, TickRow
from storage.timeseries import Bar, KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from storage.timeseries.sql import SqlTimeSeriesStore

INTRADAY = [interval for interval in KlineInterval if interval.is_intraday]


def reference_bars(ticks: list[Tick], interval: KlineInterval) -> list[Bar]:
    """Ticks in (time, id) order folded into bars, oldest first."""
    bars: list[Bar] = []
    for tick in ticks:
        bucket = floor_to_interval(tick.time, interval)
        if bars and bars[-1].time == bucket:
            bar = bars[-1]
            bars[-1] = Bar(
                bar.symbol,
                bucket,
                bar.open,
                max(bar.high, tick.last),
                min(bar.low, tick.last),
                tick.last,
                bar.volume + tick.volume,
                bar.trade_count + 1,
            )
        else:
            bars.append(
                Bar(tick.symbol, bucket, tick.last, tick.last, tick.last, tick.last, tick.volume, 1)
            )
    return bars


async def assert_bars_match_ticks(store: SqlTimeSeriesStore, symbol: str) -> None:
    stored = await store.ticks(symbol, None, None, 1_000_000)
    for interval in INTRADAY:
        expected = reference_bars(stored, interval)
        # large reads (SQLite streams and decodes them in a thread), newest and from a start
        assert await store.klines(symbol, interval, None, None, 10_000) == expected
        if expected:
            assert await store.klines(symbol, interval, expected[0].time, None, 10_000) == expected
        for limit in (1, 2, 3):
            assert await store.klines(symbol, interval, None, None, limit) == expected[-limit:]
            if expected:
                start = expected[0].time + interval.duration
                later = [bar for bar in expected if bar.time >= start]
                found = await store.klines(symbol, interval, start, None, limit)
                assert found == later[:limit]


async def assert_bar_ends_are_their_ticks(engine: AsyncEngine, symbol: str) -> None:
    """Each minute's ``first_id``/``last_id`` name the stored ticks that gave its open
    and close: the ids a writer folds with are the ids its rows were given."""
    async with engine.connect() as connection:
        ticks = {
            row.id: (row.time, row.last)
            for row in await connection.execute(
                select(TickRow.id, TickRow.time, TickRow.last).where(TickRow.symbol == symbol)
            )
        }
        bars = (
            await connection.execute(select(MinuteBarRow).where(MinuteBarRow.symbol == symbol))
        ).all()
    assert bars
    for bar in bars:
        assert ticks.get(bar.first_id) == (bar.first_time, bar.open)
        assert ticks.get(bar.last_id) == (bar.last_time, bar.close)
