"""Cash balances, positions, trades and the open orders that reserve them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models
from storage.repositories.keyset import ListOrder

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


async def balances(
    session: AsyncSession, user_id: int, *, for_update: bool = False
) -> list[models.CashBalance]:
    query = (
        select(models.CashBalance)
        .where(models.CashBalance.user_id == user_id)
        .order_by(models.CashBalance.currency)
    )
    if for_update:
        query = query.with_for_update()
    return list(await session.scalars(query))


async def balance(
    session: AsyncSession, user_id: int, currency: str, *, for_update: bool = False
) -> models.CashBalance | None:
    query = select(models.CashBalance).where(
        models.CashBalance.user_id == user_id, models.CashBalance.currency == currency
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def position(
    session: AsyncSession, user_id: int, symbol_code: str, *, for_update: bool = False
) -> models.Position | None:
    query = select(models.Position).where(
        models.Position.user_id == user_id, models.Position.symbol_code == symbol_code
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def positions(session: AsyncSession, user_id: int) -> list[models.Position]:
    """Open positions. Flat ones are filtered here: decimals are text on SQLite,
    where ``quantity != 0`` would compare strings."""
    result = await session.scalars(
        select(models.Position)
        .where(models.Position.user_id == user_id)
        .order_by(models.Position.symbol_code)
    )
    return [row for row in result if row.quantity != 0]


async def open_orders_with_currency(
    session: AsyncSession, user_id: int
) -> list[tuple[models.Order, str]]:
    """The user's open orders and each one's quote currency (for reservations)."""
    result = await session.execute(
        select(models.Order, models.Symbol.currency)
        .join(models.Symbol, models.Symbol.code == models.Order.symbol_code)
        .where(models.Order.user_id == user_id, models.Order.status.in_(OPEN_STATUSES))
    )
    return [(order, currency) for order, currency in result]


async def reserved_for_buys(
    session: AsyncSession, user_id: int, currency: str, commission_rate: Decimal
) -> Decimal:
    """Cash held back by the user's open BUY orders quoted in ``currency``, summed from
    the orders: the reference :mod:`storage.repositories.reservations` keeps equal."""
    totals = await reserved_for_buys_by_account(session, [(user_id, currency)], commission_rate)
    return totals[(user_id, currency)]


async def reserved_for_sells(session: AsyncSession, user_id: int, symbol_code: str) -> Decimal:
    """Quantity of ``symbol_code`` held back by the user's open SELL orders, summed from
    the orders: the reference :mod:`storage.repositories.reservations` keeps equal."""
    rows = await session.execute(
        select(models.Order.quantity, models.Order.filled_quantity).where(
            models.Order.user_id == user_id,
            models.Order.status.in_(OPEN_STATUSES),
            models.Order.side == "SELL",
            models.Order.symbol_code == symbol_code,
        )
    )
    return sum((q - f for q, f in rows), Decimal(0))


async def all_open_orders(session: AsyncSession) -> list[models.Order]:
    result = await session.scalars(
        select(models.Order).where(models.Order.status.in_(OPEN_STATUSES)).order_by(models.Order.id)
    )
    return list(result)


@dataclass(frozen=True, slots=True)
class BookFingerprint:
    """What a symbol's open orders add up to: equal fingerprints, equal (id, version) sets
    in practice; versions only grow, so a changed order changes the version sum."""

    count: int = 0
    id_sum: int = 0
    version_sum: int = 0

    def sums(self) -> tuple[int, int, int]:
        """(count, id sum, version sum), as the matcher's book gives them."""
        return self.count, self.id_sum, self.version_sum


async def open_order_fingerprints(session: AsyncSession) -> dict[str, BookFingerprint]:
    """Per symbol, the fingerprint of its open orders: one aggregate row per symbol,
    computed by the database (the matcher's cheap "did anything change?")."""
    order = models.Order
    rows = await session.execute(
        select(order.symbol_code, func.count(), func.sum(order.id), func.sum(order.version))
        .where(order.status.in_(OPEN_STATUSES))
        .group_by(order.symbol_code)
    )
    return {
        symbol: BookFingerprint(int(count), int(id_sum), int(version_sum))
        for symbol, count, id_sum, version_sum in rows
    }


async def open_order_bucket_fingerprints(
    session: AsyncSession, symbol: str, bucket_size: int
) -> dict[int, BookFingerprint]:
    """``symbol``'s open orders fingerprinted per bucket of ``bucket_size`` consecutive
    ids (bucket ``id // bucket_size``), buckets without an open order left out: where a
    symbol's fingerprint differs, which ids to compare."""
    order = models.Order
    bucket = (order.id // bucket_size).label("bucket")
    rows = await session.execute(
        select(bucket, func.count(), func.sum(order.id), func.sum(order.version))
        .where(order.symbol_code == symbol, order.status.in_(OPEN_STATUSES))
        .group_by(bucket)
    )
    return {
        int(number): BookFingerprint(int(count), int(id_sum), int(version_sum))
        for number, count, id_sum, version_sum in rows
    }


async def open_order_versions(
    session: AsyncSession, symbol: str, *, first_id: int, end_id: int
) -> list[tuple[int, int]]:
    """``(id, version)`` of ``symbol``'s open orders with ids in ``[first_id, end_id)``."""
    order = models.Order
    rows = await session.execute(
        select(order.id, order.version).where(
            order.symbol_code == symbol,
            order.status.in_(OPEN_STATUSES),
            order.id >= first_id,
            order.id < end_id,
        )
    )
    return [(int(order_id), int(version)) for order_id, version in rows]


async def orders_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[models.Order]:
    """The orders with these ids, any status (ids that do not exist are left out)."""
    if not ids:
        return []
    return list(await session.scalars(select(models.Order).where(models.Order.id.in_(ids))))


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Which of a user's fills a page shows; None filters nothing. The time range is
    on the tick the fill was made on (``from`` inclusive, ``to`` exclusive)."""

    symbol_code: str | None = None
    side: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None


# Fills are listed newest first, keyset on the id.
TRADE_LIST = ListOrder(models.Trade.id, descending=True)


def trades_query(user_id: int, filters: TradeFilter) -> Select[models.Trade]:
    """The user's fills that ``filters`` keeps (no order or limit: see ``keyset``)."""
    trade = models.Trade
    query = select(trade).where(trade.user_id == user_id)
    if filters.symbol_code is not None:
        query = query.where(trade.symbol_code == filters.symbol_code)
    if filters.side is not None:
        query = query.where(trade.side == filters.side)
    if filters.time_from is not None:
        query = query.where(trade.tick_time >= filters.time_from)
    if filters.time_to is not None:
        query = query.where(trade.tick_time < filters.time_to)
    return query


async def trades_for_orders(session: AsyncSession, order_ids: Sequence[int]) -> list[models.Trade]:
    result = await session.scalars(
        select(models.Trade).where(models.Trade.order_id.in_(order_ids)).order_by(models.Trade.id)
    )
    return list(result)


# --- several accounts at once: one query each for a batch of placements ---------------------

UserCurrency = tuple[int, str]
UserSymbol = tuple[int, str]


async def lock_balances(
    session: AsyncSession, keys: Sequence[UserCurrency]
) -> dict[UserCurrency, models.CashBalance]:
    """The balance rows of ``keys``, locked (PostgreSQL) in (user, currency) order.

    A fixed lock order keeps two batches that share accounts from deadlocking;
    a single placement locks only one row, so it cannot deadlock against a batch.
    """
    if not keys:
        return {}
    result = await session.scalars(
        select(models.CashBalance)
        .where(tuple_(models.CashBalance.user_id, models.CashBalance.currency).in_(sorted(keys)))
        .order_by(models.CashBalance.user_id, models.CashBalance.currency)
        .with_for_update()
    )
    return {(row.user_id, row.currency): row for row in result}


async def positions_for(
    session: AsyncSession, keys: Sequence[UserSymbol]
) -> dict[UserSymbol, models.Position]:
    if not keys:
        return {}
    result = await session.scalars(
        select(models.Position).where(
            tuple_(models.Position.user_id, models.Position.symbol_code).in_(sorted(keys))
        )
    )
    return {(row.user_id, row.symbol_code): row for row in result}


async def reserved_for_buys_by_account(
    session: AsyncSession, keys: Sequence[UserCurrency], commission_rate: Decimal
) -> dict[UserCurrency, Decimal]:
    """Cash held back by the open BUY orders of several (user, currency) pairs, summed
    from the orders (placement reads the kept values of
    :mod:`storage.repositories.reservations`; this is their reference).

    The orders are read through the partial index of open orders by user, so
    the cost is the accounts' own open orders, not the book; they are summed
    per symbol first and only then mapped to currencies, so no join runs per
    order row. PostgreSQL sums exact NUMERICs in SQL; SQLite keeps decimals as
    text, so there the rows are summed in Python.
    """
    wanted = set(keys)
    if not wanted:
        return {}
    remaining = models.Order.quantity - models.Order.filled_quantity
    where = (
        models.Order.user_id.in_(sorted({user for user, _ in wanted})),
        models.Order.status.in_(OPEN_STATUSES),
        models.Order.side == "BUY",
        models.Order.reserve_price.is_not(None),
    )
    per_symbol: dict[tuple[int, str], Decimal] = {}
    if session.get_bind().dialect.name == "postgresql":
        grouped = await session.execute(
            select(
                models.Order.user_id,
                models.Order.symbol_code,
                func.sum(remaining * models.Order.reserve_price),
            )
            .where(*where)
            .group_by(models.Order.user_id, models.Order.symbol_code)
        )
        for user_id, symbol_code, total in grouped:
            per_symbol[(user_id, symbol_code)] = total or Decimal(0)
    else:
        rows = await session.execute(
            select(
                models.Order.user_id,
                models.Order.symbol_code,
                models.Order.quantity,
                models.Order.filled_quantity,
                models.Order.reserve_price,
            ).where(*where)
        )
        for user_id, symbol_code, quantity, filled, price in rows:
            if price is not None:  # excluded by the query; says so to the type checker
                key = (user_id, symbol_code)
                per_symbol[key] = per_symbol.get(key, Decimal(0)) + (quantity - filled) * price
    currency_of = await _currencies(session, {code for _, code in per_symbol})
    totals: dict[UserCurrency, Decimal] = dict.fromkeys(wanted, Decimal(0))
    for (user_id, symbol_code), total in per_symbol.items():
        key = (user_id, currency_of[symbol_code])
        if key in totals:
            totals[key] += total
    return {key: total * (1 + commission_rate) for key, total in totals.items()}


async def _currencies(session: AsyncSession, codes: set[str]) -> dict[str, str]:
    """Each symbol's quote currency (a handful of rows: the symbols holding orders)."""
    if not codes:
        return {}
    rows = await session.execute(
        select(models.Symbol.code, models.Symbol.currency).where(
            models.Symbol.code.in_(sorted(codes))
        )
    )
    return {row.code: row.currency for row in rows}


async def reserved_for_sells_by_position(
    session: AsyncSession, keys: Sequence[UserSymbol]
) -> dict[UserSymbol, Decimal]:
    """:func:`reserved_for_sells` for several (user, symbol) pairs in one query."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            models.Order.user_id,
            models.Order.symbol_code,
            models.Order.quantity,
            models.Order.filled_quantity,
        ).where(
            tuple_(models.Order.user_id, models.Order.symbol_code).in_(sorted(wanted)),
            models.Order.status.in_(OPEN_STATUSES),
            models.Order.side == "SELL",
        )
    )
    totals: dict[UserSymbol, Decimal] = dict.fromkeys(wanted, Decimal(0))
    for user_id, symbol_code, quantity, filled in rows:
        totals[(user_id, symbol_code)] += quantity - filled
    return totals


async def equity_snapshots(
    session: AsyncSession,
    user_id: int,
    currency: str,
    start: datetime | None,
    end: datetime | None,
) -> list[models.EquitySnapshot]:
    """The user's snapshots in ``currency`` taken in ``[start, end)``, oldest first."""
    snapshot = models.EquitySnapshot
    query = select(snapshot).where(snapshot.user_id == user_id, snapshot.currency == currency)
    if start is not None:
        query = query.where(snapshot.taken_at >= start)
    if end is not None:
        query = query.where(snapshot.taken_at < end)
    return list(await session.scalars(query.order_by(snapshot.taken_at, snapshot.id)))


async def fills_until(
    session: AsyncSession, user_id: int, end: datetime | None, symbol: str | None = None
) -> list[models.Trade]:
    """Every fill of the user (of one symbol) before ``end``, oldest first: the
    ledger round trips are rebuilt from (accounts start flat)."""
    trade = models.Trade
    query = select(trade).where(trade.user_id == user_id)
    if symbol is not None:
        query = query.where(trade.symbol_code == symbol)
    if end is not None:
        query = query.where(trade.tick_time < end)
    return list(await session.scalars(query.order_by(trade.id)))


async def all_positions(
    session: AsyncSession, user_id: int, *, for_update: bool = False
) -> list[models.Position]:
    """Every position row of the user, flat ones included, by symbol."""
    query = (
        select(models.Position)
        .where(models.Position.user_id == user_id)
        .order_by(models.Position.symbol_code)
    )
    if for_update:
        query = query.with_for_update()
    return list(await session.scalars(query))


async def last_trade_id(session: AsyncSession, user_id: int) -> int:
    """The id of the user's latest fill; 0 before the first."""
    found = await session.scalar(
        select(func.max(models.Trade.id)).where(models.Trade.user_id == user_id)
    )
    return int(found or 0)


async def reset_marks(session: AsyncSession, user_id: int) -> list[int]:
    """For each reset of the user's account, the last fill before it, oldest first."""
    query = (
        select(models.AccountReset.last_trade_id)
        .where(models.AccountReset.user_id == user_id)
        .order_by(models.AccountReset.id)
    )
    return [int(mark) for mark in await session.scalars(query)]
