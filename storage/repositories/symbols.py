"""Symbols, their administrative audit and their stored daily bars."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy import Select, exists, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models
from storage.repositories.keyset import ListOrder, Window, read_window
from storage.timeseries import Bar


async def symbols_by_codes(session: AsyncSession, codes: Sequence[str]) -> list[models.Symbol]:
    result = await session.scalars(select(models.Symbol).where(models.Symbol.code.in_(codes)))
    return list(result)


async def symbol_for_update(session: AsyncSession, code: str) -> models.Symbol | None:
    """The symbol, row-locked until the transaction ends (PostgreSQL): two administrators
    changing one symbol at once are serialised, and each audit row's ``before`` is exact."""
    result = await session.scalars(
        select(models.Symbol).where(models.Symbol.code == code).with_for_update()
    )
    return result.first()


async def currency_listed(session: AsyncSession, currency: str) -> bool:
    """Whether any symbol is already quoted in ``currency``."""
    found = await session.scalar(
        select(literal(1)).where(exists().where(models.Symbol.currency == currency))
    )
    return found is not None


async def open_cash_balances(
    session: AsyncSession, currency: str, amount: Decimal, now: datetime
) -> int:
    """Give every user without a ``currency`` balance one of ``amount``, in one statement;
    how many were opened."""
    balance = models.CashBalance
    missing = select(
        models.User.id,
        literal(currency),
        literal(amount, balance.amount.type),
        literal(now, balance.updated_at.type),
    ).where(~exists().where(balance.user_id == models.User.id, balance.currency == currency))
    result = await session.execute(
        insert(balance).from_select(["user_id", "currency", "amount", "updated_at"], missing)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def add_audit(
    session: AsyncSession,
    *,
    code: str,
    action: str,
    actor_id: int | None,
    actor_name: str,
    before: dict[str, object] | None,
    after: dict[str, object],
) -> models.SymbolAudit:
    row = models.SymbolAudit(
        symbol_code=code,
        action=action,
        actor_id=actor_id,
        actor_name=actor_name,
        at=datetime.now(UTC),
        before=before,
        after=after,
    )
    session.add(row)
    return row


# Audit rows are listed newest first, keyset on the id.
AUDIT_LIST = ListOrder(models.SymbolAudit.id, descending=True)


def audit_query(code: str | None) -> Select[models.SymbolAudit]:
    """Audit rows of one symbol, or of all (no order or limit: see ``keyset``)."""
    query = select(models.SymbolAudit)
    return query if code is None else query.where(models.SymbolAudit.symbol_code == code)


# Symbols are listed in code order, keyset on the primary key.
SYMBOL_LIST = ListOrder(models.Symbol.code, descending=False)


def symbols_query(*, search: str | None, exchange: str | None) -> Select[models.Symbol]:
    """Symbols whose code or name contains ``search`` (any case), on ``exchange``."""
    query = select(models.Symbol)
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
    return query


async def search_symbols(
    session: AsyncSession,
    *,
    search: str | None,
    exchange: str | None,
    after_code: str | None,
    limit: int,
) -> list[models.Symbol]:
    """A page of symbols in code order (keyset pagination on the primary key)."""
    window = Window(size=limit, after=after_code)
    found = await read_window(
        session, symbols_query(search=search, exchange=exchange), SYMBOL_LIST, window
    )
    return found.rows


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
