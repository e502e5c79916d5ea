"""``quantgraph rebuild-bars``: minute bars made the fold of the stored ticks again
after ticks were written around the store or deleted by hand, run as a user would."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import MinuteBarRow, TickRow
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.bar_rebuild import RebuildReport, rebuild_minute_bars, rebuild_window
from storage.timeseries.sql import SqlTimeSeriesStore
from storage.types import format_sqlite_time
from tests.cli.support import COMMAND, quantgraph
from tests.support.minute_bars import (
    assert_bar_ends_are_their_ticks,
    assert_bars_match_ticks,
    reference_bars,
)

SYMBOL = "601398.SH"  # a demo symbol; its ticks here are in 2001, before any seeded
DAY = datetime(2001, 3, 5, tzinfo=UTC)


def ticks(start: datetime, seconds: range, base: int) -> list[Tick]:
    """A tick every ``seconds`` step from ``start``, prices cycling on the 0.01 grid."""
    made = []
    for second in seconds:
        price = Decimal(base * 100 + second % 37) / 100
        made.append(
            Tick(
                SYMBOL,
                start + timedelta(seconds=second),
                price,
                price,
                price,
                Decimal(second % 5 + 1),
            )
        )
    return made


async def write_around_the_store(sql_engine: AsyncEngine, rows: list[Tick]) -> None:
    """Hand-made SQL, as a bulk load would: ticks without their minute bars."""
    async with sql_engine.begin() as connection:
        await connection.execute(
            insert(TickRow),
            [
                {
                    "symbol": t.symbol,
                    "time": t.time,
                    "last": t.last,
                    "bid": t.bid,
                    "ask": t.ask,
                    "volume": t.volume,
                }
                for t in rows
            ],
        )


async def minute_bars(store: SqlTimeSeriesStore) -> list[object]:
    return list(
        await store.klines(SYMBOL, KlineInterval.MINUTE_1, DAY - timedelta(days=1), None, 10_000)
    )


def test_help_says_what_it_is_for() -> None:
    result = subprocess.run(
        [*COMMAND, "rebuild-bars", "--help"], capture_output=True, text=True, check=True
    )
    for word in ("--symbol", "--from", "--to", "COPY", "TDengine"):
        assert word in result.stdout


async def test_ticks_written_or_deleted_around_the_store_get_their_bars_back(
    database_url: str, sql_engine: AsyncEngine
) -> None:
    store = SqlTimeSeriesStore(sql_engine)
    # given ticks through the store over two days, then more around it (in the same
    # minutes and in new ones), and some deleted by hand: one whole minute, one tick
    await store.write_ticks(ticks(DAY, range(0, 1800, 7), 10))
    await store.write_ticks(ticks(DAY + timedelta(days=1), range(0, 600, 11), 12))
    await write_around_the_store(sql_engine, ticks(DAY, range(3, 2400, 13), 11))
    async with sql_engine.begin() as connection:
        minute = DAY + timedelta(minutes=5)
        await connection.execute(
            delete(TickRow).where(
                TickRow.symbol == SYMBOL,
                TickRow.time >= minute,
                TickRow.time < minute + timedelta(minutes=1),
            )
        )
        await connection.execute(
            delete(TickRow).where(
                TickRow.symbol == SYMBOL, TickRow.time == DAY + timedelta(seconds=7)
            )
        )
    stored = await store.ticks(SYMBOL, None, None, 1_000_000)
    assert await minute_bars(store) != reference_bars(stored, KlineInterval.MINUTE_1)
    # when the symbol's bars are rebuilt
    result = quantgraph("rebuild-bars", "--symbol", SYMBOL, database_url=database_url)
    # then every width of bar is the fold of the stored ticks again, the emptied minute gone
    assert result.returncode == 0, result.stderr
    expected = reference_bars(stored, KlineInterval.MINUTE_1)
    assert f"rebuilt {len(expected)} minute bars from {len(stored)} ticks" in result.stdout
    assert "1 symbol(s), 2 day(s); 1 bar(s) without ticks removed" in result.stdout
    await assert_bars_match_ticks(store, SYMBOL)
    await assert_bar_ends_are_their_ticks(sql_engine, SYMBOL)


async def test_a_range_rebuilds_its_minutes_and_leaves_the_others(
    database_url: str, sql_engine: AsyncEngine
) -> None:
    store = SqlTimeSeriesStore(sql_engine)
    # given ticks written around the store on two days
    await write_around_the_store(sql_engine, ticks(DAY, range(0, 600, 9), 10))
    await write_around_the_store(sql_engine, ticks(DAY + timedelta(days=1), range(0, 600, 9), 10))
    # when only from 00:05:30 of the second day (floored to its minute) is rebuilt
    start = DAY + timedelta(days=1, minutes=5, seconds=30)
    result = quantgraph(
        "rebuild-bars", "--symbol", SYMBOL, "--from", start.isoformat(), database_url=database_url
    )
    assert result.returncode == 0, result.stderr
    # then the second day has bars from 00:05 on, and nothing else does
    stored = await store.ticks(SYMBOL, None, None, 1_000_000)
    floor = start.replace(second=0)
    wanted = [bar for bar in reference_bars(stored, KlineInterval.MINUTE_1) if bar.time >= floor]
    assert wanted and await minute_bars(store) == wanted


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--symbol", "NOPE.SH"], "unknown symbol 'NOPE.SH'"),
        (["--from", "2001-03-05T00:00:00"], "has no offset"),
        (["--from", "yesterday"], "is neither a date"),
        (["--from", "0001-01-01T00:00:00+01:00"], "outside the years 1 to 9999 in UTC"),
        (["--to", "9999-12-31T23:59:59-01:00"], "outside the years 1 to 9999 in UTC"),
        (["--from", "2001-03-06", "--to", "2001-03-05"], "--to is not after --from"),
    ],
)
async def test_bad_arguments_exit_2_and_change_nothing(
    database_url: str, sql_engine: AsyncEngine, arguments: list[str], message: str
) -> None:
    # given ticks written around the store, so a rebuild would add their bars
    await write_around_the_store(sql_engine, ticks(DAY, range(0, 120, 9), 10))
    # when the command is given a bad argument
    result = quantgraph("rebuild-bars", *arguments, database_url=database_url)
    # then it says why, exits 2 and writes nothing
    assert result.returncode == 2
    assert message in result.stderr
    assert await minute_bars(SqlTimeSeriesStore(sql_engine)) == []


async def test_a_rebuild_while_ticks_are_written_loses_none(sql_engine: AsyncEngine) -> None:
    store = SqlTimeSeriesStore(sql_engine)
    await write_around_the_store(sql_engine, ticks(DAY, range(0, 3600, 5), 10))
    # when writers keep writing, in small batches, to the minutes being rebuilt and to
    # new ones (a new minute has no bar for the rebuild to hold back), over and over
    batches = [
        ticks(DAY, range(offset, 3600, 97), 11)
        + ticks(DAY, range(3600 + 60 * offset, 3660 + 60 * offset, 7), 12)
        for offset in range(60)
    ]

    async def write(share: list[list[Tick]]) -> None:
        for batch in share:
            await store.write_ticks(batch)

    async def rebuild() -> None:
        for _ in range(8):
            await rebuild_minute_bars(sql_engine, [SYMBOL], None, None)

    await asyncio.gather(*(write(batches[first::3]) for first in range(3)), rebuild())
    # then each bar holds every tick once, whichever finished first
    await assert_bars_match_ticks(store, SYMBOL)
    await assert_bar_ends_are_their_ticks(sql_engine, SYMBOL)


async def test_ticks_the_store_cannot_read_are_skipped(sql_engine: AsyncEngine) -> None:
    # given a readable tick and, in the same minute, a row whose price is not a number
    await write_around_the_store(sql_engine, ticks(DAY, range(1), 10))
    async with sql_engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        moment = DAY + timedelta(seconds=30)
        price = "'NaN'" if postgres else "'not a number'"
        await connection.execute(
            text(
                "INSERT INTO ticks (symbol, time, last, bid, ask, volume) "
                f"VALUES (:symbol, :time, {price}, 1, 1, 1)"
            ),
            {"symbol": SYMBOL, "time": moment if postgres else format_sqlite_time(moment)},
        )
    # when rebuilt
    report = await rebuild_minute_bars(sql_engine, [SYMBOL], None, None)
    # then the bar is the readable tick's alone
    async with sql_engine.connect() as connection:
        bars = (
            await connection.execute(select(MinuteBarRow).where(MinuteBarRow.symbol == SYMBOL))
        ).all()
    assert [(bar.trade_count, bar.open) for bar in bars] == [(1, Decimal("10.00"))]
    assert report.ticks == 1


async def test_a_writer_waits_while_its_day_is_rebuilt(sql_engine: AsyncEngine) -> None:
    store = SqlTimeSeriesStore(sql_engine)
    await write_around_the_store(sql_engine, ticks(DAY, range(0, 600, 9), 10))
    # given a day being rebuilt, its transaction still open
    async with sql_engine.begin() as connection:
        await rebuild_window(connection, SYMBOL, DAY, DAY + timedelta(days=1), RebuildReport())
        # when a feed writes ticks of a minute that has no bar yet
        writer = asyncio.create_task(store.write_ticks(ticks(DAY, range(900, 960, 5), 12)))
        await asyncio.sleep(0.5)
        # then it waits: had it committed now, the rebuild's fold (which cannot see its
        # ticks) would be merged into the bar it wrote, or it into the rebuilt one
        assert not writer.done()
    await writer
    await assert_bars_match_ticks(store, SYMBOL)


async def test_the_end_of_time_is_rebuilt_up_to_its_last_minute(
    database_url: str, sql_engine: AsyncEngine
) -> None:
    # given ticks written around the store in the last minutes datetime can hold
    store = SqlTimeSeriesStore(sql_engine)
    last_day = datetime(9999, 12, 31, 23, 57, tzinfo=UTC)
    await write_around_the_store(sql_engine, ticks(last_day, range(0, 179, 11), 10))
    # when rebuilt up to a time whose minute ends past it, and then without bounds
    bounded = quantgraph(
        "rebuild-bars",
        "--symbol",
        SYMBOL,
        "--to",
        "9999-12-31T23:59:30Z",
        database_url=database_url,
    )
    report = await rebuild_minute_bars(sql_engine, [SYMBOL], None, None)
    # then both finish; the minutes before the last have their bars, the last is left
    assert bounded.returncode == 0, bounded.stderr
    assert "rebuilt 2 minute bars" in bounded.stdout
    assert (report.bars, report.days) == (2, 1)
    stored = await store.ticks(SYMBOL, None, None, 1_000)
    expected = reference_bars(stored, KlineInterval.MINUTE_1)
    minutes = await store.klines(SYMBOL, KlineInterval.MINUTE_1, last_day, None, 10)
    assert [bar.time.minute for bar in minutes] == [57, 58]
    assert minutes == expected[:2]
