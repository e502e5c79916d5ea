"""Stored times sort and read back for every year, and a bad row never takes reads down
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine
from storage.migrate import alembic_config, upgrade_to_head
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.sql import SqlTimeSeriesStore
from storage.types import decimal_digits, format_sqlite_time
from tests.conftest import sql_database

SYMBOL = "600519.SH"
OTHER = "BTCUSDT"
NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def tick(symbol: str, time: datetime, last: str = "1500.00", volume: str = "1") -> Tick:
    price = Decimal(last)
    return Tick(symbol, time, price, price, price, Decimal(volume))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_sqlite_time_text_is_fixed_width_so_text_order_is_time_order(moment: datetime) -> None:
    later = moment - timedelta(microseconds=1) if moment.year == 9999 else moment
    earlier_text, text_ = format_sqlite_time(later), format_sqlite_time(moment)
    assert len(text_) == 27 and text_.endswith("Z")
    assert earlier_text <= text_
    assert format_sqlite_time(datetime(999, 1, 1, tzinfo=UTC)) < format_sqlite_time(NOW)


def test_decimal_digits_never_round() -> None:
    assert decimal_digits(Decimal("1234567890123456789012345678901234567890")) == (40, 0)
    assert decimal_digits(Decimal("0.00000000001")) == (0, 11)
    assert decimal_digits(Decimal("1.5000000000000")) == (1, 1)
    assert decimal_digits(Decimal("1E+5")) == (6, 0)
    assert decimal_digits(Decimal("-0.000")) == (0, 0)


async def test_ticks_of_any_year_sort_by_time_and_read_back(sql_engine: AsyncEngine) -> None:
    # given ticks far in the past and a current one, written through the store
    store = SqlTimeSeriesStore(sql_engine)
    first = datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)  # datetime.min itself is refused
    times = [first, datetime(999, 6, 1, 12, tzinfo=UTC), NOW]
    await store.write_ticks([tick(SYMBOL, moment) for moment in times])
    # when reading them back
    latest = await store.latest_ticks([SYMBOL])
    history = await store.ticks(SYMBOL, None, None, 10)
    # then the current tick is the latest, and every time comes back exactly, in order
    assert latest[SYMBOL].time == NOW
    assert [t.time for t in history][-3:] == times


async def _insert_raw(sql_engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Rows as hand-made SQL would store them, bypassing every check of the code."""
    async with sql_engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        cast = "CAST(CAST(:time AS text) AS timestamptz)" if postgres else ":time"
        number = "CAST(CAST({} AS text) AS numeric)" if postgres else "{}"
        last, volume = number.format(":last"), number.format(":volume")
        await connection.execute(
            text(
                "INSERT INTO ticks (symbol, time, last, bid, ask, volume) "
                f"VALUES (:symbol, {cast}, {last}, {last}, {last}, {volume})"
            ),
            [{"volume": "1", **row} for row in rows],
        )


def _bad_rows(postgres: bool) -> list[dict[str, Any]]:
    if postgres:
        # timestamptz holds these; Python's datetime cannot.
        times = ["10000-01-01 00:00:00+00", "infinity", "0044-03-15 00:00:00+00 BC"]
        return [{"symbol": SYMBOL, "time": t, "last": "1.00", "volume": "1"} for t in times]
    return [
        # what older versions wrote for year 999: sorts after every real time
        {"symbol": SYMBOL, "time": "999-01-01T00:00:00.000000Z", "last": "1.00", "volume": "1"},
        {"symbol": SYMBOL, "time": "not a time", "last": "1.00", "volume": "1"},
        {"symbol": SYMBOL, "time": "2026-13-45T00:00:00.000000Z", "last": "1.00", "volume": "1"},
        {"symbol": SYMBOL, "time": format_sqlite_time(NOW), "last": "abc", "volume": "1"},
        {"symbol": SYMBOL, "time": format_sqlite_time(NOW), "last": "1.00", "volume": "NaN"},
    ]


async def test_an_unreadable_row_is_skipped_and_other_rows_and_symbols_still_read(
    sql_engine: AsyncEngine,
) -> None:
    # given good ticks of two symbols, then rows no version of the code can decode
    store = SqlTimeSeriesStore(sql_engine)
    good = [tick(SYMBOL, NOW - timedelta(minutes=1)), tick(OTHER, NOW, "95000.00")]
    await store.write_ticks(good)
    await _insert_raw(sql_engine, _bad_rows(sql_engine.dialect.name == "postgresql"))
    # when reading latest ticks, history and bars
    latest = await store.latest_ticks([SYMBOL, OTHER])
    history = await store.ticks(SYMBOL, None, None, 100)
    ranged = await store.ticks(SYMBOL, NOW - timedelta(hours=1), None, 100)
    bars = await store.klines(SYMBOL, KlineInterval.MINUTE_1, None, None, 100)
    # then the bad rows are skipped: the latest readable tick is the quote
    assert latest == {SYMBOL: good[0], OTHER: good[1]}
    assert [t for t in history if t.time >= NOW - timedelta(hours=1)] == [good[0]]
    assert ranged == [good[0]]
    assert bars[-1].time == NOW - timedelta(minutes=1) and bars[-1].trade_count == 1


async def test_bar_volumes_are_summed_without_rounding(sql_engine: AsyncEngine) -> None:
    # given two ticks whose volumes add up to 29 significant digits
    store = SqlTimeSeriesStore(sql_engine)
    volume = "999999999999999999.9999999999"
    await store.write_ticks(
        [tick(SYMBOL, NOW, volume=volume), tick(SYMBOL, NOW + timedelta(seconds=1), volume=volume)]
    )
    # when aggregating them into one bar
    bars = await store.klines(SYMBOL, KlineInterval.MINUTE_1, NOW, NOW + timedelta(minutes=1), 5)
    # then the bar's volume is the exact sum
    assert [bar.volume for bar in bars] == [Decimal("1999999999999999999.9999999998")]


async def test_extreme_kline_bounds_give_empty_results_not_errors(sql_engine: AsyncEngine) -> None:
    store = SqlTimeSeriesStore(sql_engine)
    last = datetime.max.replace(tzinfo=UTC)
    assert (
        await store.klines(SYMBOL, KlineInterval.HOUR_1, last - timedelta(minutes=1), None, 5) == []
    )
    assert await store.klines(SYMBOL, KlineInterval.HOUR_1, None, last, 5) == []


async def test_migration_pads_years_written_unpadded(request: pytest.FixtureRequest) -> None:
    # given a SQLite database (PostgreSQL has timestamptz) at 0002 holding times as
    # older versions wrote them
    async with sql_database(request, "sqlite") as database_url:
        latest, history = await _migrate_legacy_times(database_url)
    assert latest[SYMBOL].time == NOW
    assert [t.time for t in history] == [
        datetime(5, 6, 7, 8, 9, 10, 11, tzinfo=UTC),
        datetime(999, 1, 1, tzinfo=UTC),
        NOW,
    ]


async def _migrate_legacy_times(database_url: str) -> tuple[dict[str, Tick], list[Tick]]:
    sql_engine = create_engine(database_url)
    try:
        async with sql_engine.begin() as connection:

            def downgrade(sync_connection: Any) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                command.downgrade(config, "0002")

            await connection.run_sync(downgrade)
        await _insert_raw(
            sql_engine,
            [
                {"symbol": SYMBOL, "time": "999-01-01T00:00:00.000000Z", "last": "1.00"},
                {"symbol": SYMBOL, "time": "5-06-07T08:09:10.000011Z", "last": "2.00"},
                {"symbol": SYMBOL, "time": "2026-03-02T01:30:00.000000Z", "last": "3.00"},
            ],
        )
        # when migrating to the latest revision
        await upgrade_to_head(sql_engine)
        # then every time reads back, the current one is the latest, and the order is right
        store = SqlTimeSeriesStore(sql_engine)
        return await store.latest_ticks([SYMBOL]), await store.ticks(SYMBOL, None, None, 1000)
    finally:
        await sql_engine.dispose()
