"""Rebuilding minute bars from the stored ticks (``quantgraph rebuild-bars``).

The SQL store keeps each minute's bar in the transaction that writes its ticks
(:mod:`storage.timeseries.minute_bars`), so ticks written around the store (a bulk
``COPY``, hand-made SQL) are in no bar, and bars of ticks deleted by hand still
count them. A rebuild makes a range's bars the fold of its ticks again.

It goes one symbol and one UTC day at a time, each day in a transaction of its own
that deletes the day's bars and folds its readable ticks (the rows the store's
reads would decode; others are skipped and counted). Live writers are held back
for that day's transaction and then merge into the rebuilt bars, so a rebuild
may run while the server takes ticks: on PostgreSQL the transaction holds a
``SHARE ROW EXCLUSIVE`` lock on ``minute_bars`` (a writer's upsert waits, its
ticks not yet visible to the fold), on SQLite the database's one write lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text, union
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import MinuteBarRow, TickRow
from storage.timeseries.minute_bars import POSTGRES_REBUILD, SQLITE_UPSERT, fold_minute_bars
from storage.timeseries.sql import finite_decimal, raw_text, readable_time
from storage.types import parse_sqlite_time

DAY = timedelta(days=1)
LAST_MINUTE = datetime.max.replace(second=0, microsecond=0, tzinfo=UTC)
"""Where a rebuild stops: the minute's end (and so a window holding it) is past what
``datetime`` can hold, so the bar of 9999-12-31 23:59 UTC is left as it is."""
_PG_LOCK = text("LOCK TABLE minute_bars IN SHARE ROW EXCLUSIVE MODE")
# SQLite begins a transaction at its first write: this one changes nothing.
_SQLITE_WRITE_LOCK = text("UPDATE minute_bars SET trade_count = trade_count WHERE 0")


@dataclass
class RebuildReport:
    """What a rebuild did: bars written from how many ticks, over how many days."""

    symbols: int = 0
    days: int = 0
    ticks: int = 0
    bars: int = 0
    bars_removed: int = 0
    unreadable_ticks: int = 0


Progress = Callable[[str, RebuildReport], object]


async def stored_symbols(engine: AsyncEngine) -> list[str]:
    """Every symbol with ticks or minute bars, in order."""
    tick, bar = TickRow.__table__.c, MinuteBarRow.__table__.c
    query = union(select(tick.symbol).distinct(), select(bar.symbol).distinct())
    async with engine.connect() as connection:
        return sorted(row[0] for row in await connection.execute(query))


async def rebuild_minute_bars(
    engine: AsyncEngine,
    symbols: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    *,
    progress: Progress | None = None,
) -> RebuildReport:
    """Make the minute bars of ``symbols`` from ``start`` (floored to its minute) to
    before ``end`` (raised to a whole minute) the fold of their stored ticks;
    ``None`` for either end: as far as the data goes (up to :data:`LAST_MINUTE`)."""
    lo = None if start is None else start.replace(second=0, microsecond=0)
    hi = LAST_MINUTE if end is None else min(_ceil_minute(end), LAST_MINUTE)
    postgres = engine.dialect.name == "postgresql"
    report = RebuildReport()
    for symbol in symbols:
        report.symbols += 1
        cursor = lo
        while (
            moment := await _next_moment(engine, symbol, cursor, hi, postgres=postgres)
        ) is not None:
            day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
            window_start = day_start if lo is None else max(day_start, lo)
            window_end = hi if day_start >= hi - DAY else min(day_start + DAY, hi)
            async with engine.begin() as connection:
                await rebuild_window(connection, symbol, window_start, window_end, report)
            report.days += 1
            cursor = window_end
        if progress is not None:
            progress(symbol, report)
    return report


async def _next_moment(
    engine: AsyncEngine,
    symbol: str,
    after: datetime | None,
    end: datetime,
    *,
    postgres: bool,
) -> datetime | None:
    """The earliest readable tick time or bar minute of ``symbol`` in [after, end)."""
    tick, bar = TickRow.__table__.c, MinuteBarRow.__table__.c
    first_tick = select(func.min(tick.time)).where(
        tick.symbol == symbol, tick.time < end, readable_time(postgres=postgres)
    )
    first_bar = select(func.min(bar.bucket)).where(bar.symbol == symbol, bar.bucket < end)
    if after is not None:
        first_tick = first_tick.where(tick.time >= after)
        first_bar = first_bar.where(bar.bucket >= after)
    async with engine.connect() as connection:
        found = [
            await connection.scalar(first_tick),
            await connection.scalar(first_bar),
        ]
    moments = [moment for moment in found if moment is not None]
    return min(moments, default=None)


async def rebuild_window(
    connection: AsyncConnection,
    symbol: str,
    start: datetime,
    end: datetime,
    report: RebuildReport,
) -> None:
    """In the caller's transaction: lock out writers of minute bars until it ends,
    delete ``symbol``'s bars in [start, end) and write the fold of its ticks there."""
    postgres = connection.dialect.name == "postgresql"
    bar = MinuteBarRow.__table__.c
    await connection.execute(_PG_LOCK if postgres else _SQLITE_WRITE_LOCK)
    removed = await connection.execute(
        delete(MinuteBarRow)
        .where(bar.symbol == symbol, bar.bucket >= start, bar.bucket < end)
        .returning(bar.bucket)
    )
    before = set(removed.scalars())
    if postgres:
        parameters = {"symbol": symbol, "start": start, "end": end}
        written = dict((await connection.execute(POSTGRES_REBUILD, parameters)).all())
    else:
        written = await _sqlite_fold(connection, symbol, start, end, report)
    report.bars += len(written)
    report.ticks += sum(written.values())
    report.bars_removed += len(before - written.keys())


async def _sqlite_fold(
    connection: AsyncConnection, symbol: str, start: datetime, end: datetime, report: RebuildReport
) -> dict[datetime, int]:
    """The window's ticks folded in Python (SQLite keeps decimals as text) and
    written: each bar's minute and trade count."""
    tick = TickRow.__table__.c
    rows = await connection.execute(
        select(tick.id, raw_text(tick.time), raw_text(tick.last), raw_text(tick.volume)).where(
            tick.symbol == symbol,
            tick.time >= start,
            tick.time < end,
            readable_time(postgres=False),
        )
    )
    readable = []
    for tick_id, moment, last, volume in rows:
        try:
            price, size = finite_decimal(last), finite_decimal(volume)
            readable.append((tick_id, symbol, parse_sqlite_time(moment), price, size))
        except (ValueError, TypeError, ArithmeticError):
            report.unreadable_ticks += 1  # the store's reads skip it too
    bars = fold_minute_bars(readable)
    if bars:
        await connection.execute(SQLITE_UPSERT, [minute.params() for minute in bars])
    return {minute.bucket: minute.trade_count for minute in bars}


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment or floor >= LAST_MINUTE else floor + timedelta(minutes=1)
