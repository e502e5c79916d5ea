"""Symbols and their stored daily bars."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models
from storage.timeseries import Bar


async def symbols_by_codes(session: AsyncSession, codes: Sequence[str]) -> list[models.Symbol]:
    result = await session.scalars(select(models.Symbol).where(models.Symbol.code.in_(codes)))
    return list(result)


async def search_symbols(
    session: AsyncSession,
    *,
    search: str | None,
    exchange: str | None,
    after_code: str | None,
    limit: int,
) -> list[models.Symbol]:
    """A page of symbols in code order; keyset pagination on the primary key."""
    query = select(models.Symbol).order_by(models.Symbol.code).limit(limit)
    if search:
        # Literal text: autoescape escapes LIKE's wildcards (% and _) and its escape char.
        text = search.lower()
        query = query.where(
            or_(
                func.lower(models.Symbol.code).contains(text, autoescape=True),
                func.lower(models.Symbol.name).contains(text, autoescape=True),
            )
        )
    if exchange:
        query = query.where(models.Symbol.exchange == exchange.upper())
    if after_code is not None:
        query = query.where(models.Symbol.code > after_code)
    return list(await session.scalars(query))


async def latest_daily_bars_by_codes(
    session: AsyncSession, codes: Sequence[str], limit: int
) -> dict[str, list[models.DailyBar]]:
    """The latest ``limit`` daily bars per symbol, oldest first, in one statement."""
    rank = (
        func.row_number()
        .over(partition_by=models.DailyBar.symbol_code, order_by=models.DailyBar.day.desc())
        .label("rank")
    )
    ranked = select(models.DailyBar, rank).where(models.DailyBar.symbol_code.in_(codes)).subquery()
    bar = models.DailyBar
    aliased_bar = select(bar).from_statement(
        select(*ranked.c).where(ranked.c.rank <= limit).order_by(ranked.c.symbol_code, ranked.c.day)
    )
    grouped: dict[str, list[models.DailyBar]] = defaultdict(list)
    for row in await session.scalars(aliased_bar):
        grouped[row.symbol_code].append(row)
    return grouped


async def daily_bars(
    session: AsyncSession,
    code: str,
    *,
    start: date | None,
    end: date | None,
    limit: int,
) -> list[models.DailyBar]:
    """Daily bars in ``[start, end)``, ascending; see TimeSeriesStore for limit semantics."""
    query = select(models.DailyBar).where(models.DailyBar.symbol_code == code)
    if start is not None:
        query = query.where(models.DailyBar.day >= start)
    if end is not None:
        query = query.where(models.DailyBar.day < end)
    if start is not None:
        return list(await session.scalars(query.order_by(models.DailyBar.day).limit(limit)))
    rows = list(await session.scalars(query.order_by(models.DailyBar.day.desc()).limit(limit)))
    rows.reverse()
    return rows


async def exchanges(session: AsyncSession) -> list[str]:
    result = await session.scalars(
        select(models.Symbol.exchange).distinct().order_by(models.Symbol.exchange)
    )
    return list(result)


def daily_bar_to_bar(row: models.DailyBar) -> Bar:
    """A stored daily bar as a bar opening at 00:00 UTC of its day."""
    return Bar(
        symbol=row.symbol_code,
        time=datetime.combine(row.day, time(0), tzinfo=UTC),
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        trade_count=0,
    )


async def latest_close(session: AsyncSession, code: str) -> Decimal | None:
    """The latest daily close of one symbol (the price band's centre before its first tick)."""
    bars = await latest_daily_bars_by_codes(session, [code], 1)
    rows = bars.get(code)
    return rows[-1].close if rows else None
