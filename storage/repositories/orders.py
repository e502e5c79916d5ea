"""Orders: lookups by key, pages per user, and per-strategy slices for loaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Column, Select, Table, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models
from storage.repositories.accounts import OPEN_STATUSES
from storage.repositories.keyset import ListOrder


async def orders_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[models.Order]:
    return list(await session.scalars(select(models.Order).where(models.Order.id.in_(ids))))


_TABLE = cast(Table, models.Order.__table__)
# Every column but the id the database assigns (ORM attribute names equal column names).
_WRITTEN: list[Column[object]] = [column for column in _TABLE.columns if column.key != "id"]
_INSERT = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


async def insert_new(session: AsyncSession, orders: Sequence[models.Order]) -> None:
    """Insert ``orders`` (built, not added to a session) in one statement, and give
    each its id.

    A placement batch writes up to a hundred orders at once; the unit of work
    would spend more on its bookkeeping for them than the database spends on the
    rows. Afterwards they are plain objects carrying what was stored, not rows the
    session tracks: a later change goes through a session as for any order read.
    """
    if not orders:
        return
    ids = await session.scalars(
        _INSERT,
        [{column.key: getattr(order, column.key) for column in _WRITTEN} for order in orders],
    )
    for order, order_id in zip(orders, ids, strict=True):
        order.id = order_id


async def begin_writing(session: AsyncSession) -> None:
    """On SQLite, start the write transaction now, with a write that changes nothing.

    SQLite has no row locks, and its driver begins a transaction only at the first
    write, so rows read before it may change before the caller writes (a fill
    committed in between). Once this has run no other connection writes until the
    caller's transaction ends, so the rows read afterwards stay as read: what
    ``FOR UPDATE`` gives on PostgreSQL, where this does nothing. Writers that derive
    a change from the row they read (the reservation an order held) need it.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("UPDATE orders SET id = id WHERE 0"))


async def order_for_user(
    session: AsyncSession, user_id: int, order_id: int, *, for_update: bool = False
) -> models.Order | None:
    """The order if it belongs to ``user_id``; another user's order is simply absent."""
    query = select(models.Order).where(models.Order.id == order_id, models.Order.user_id == user_id)
    if for_update:
        await begin_writing(session)
        query = query.with_for_update()
    return await session.scalar(query)


async def open_orders_for_user(
    session: AsyncSession,
    user_id: int,
    *,
    symbol_code: str | None = None,
    for_update: bool = False,
) -> list[models.Order]:
    """The user's NEW and PARTIALLY_FILLED orders (of one symbol if given), by id.

    Locked in id order when ``for_update``, the order every writer of several
    order rows takes, so two of them cannot deadlock on each other.
    """
    query = (
        select(models.Order)
        .where(models.Order.user_id == user_id, models.Order.status.in_(OPEN_STATUSES))
        .order_by(models.Order.id)
    )
    if symbol_code is not None:
        query = query.where(models.Order.symbol_code == symbol_code)
    if for_update:
        await begin_writing(session)
        query = query.with_for_update()
    return list(await session.scalars(query))


async def newest_order_id(session: AsyncSession) -> int | None:
    """The highest order id so far (of any user): an order re-queued now ranks after it."""
    return await session.scalar(select(func.max(models.Order.id)))


async def open_orders_for_symbol(session: AsyncSession, code: str) -> list[models.Order]:
    """Every NEW or PARTIALLY_FILLED order on ``code``, in id order, row-locked until the
    transaction ends (a fill or cancel of one of them waits for it)."""
    query = (
        select(models.Order)
        .where(
            models.Order.symbol_code == code,
            models.Order.status.in_(("NEW", "PARTIALLY_FILLED")),
        )
        .order_by(models.Order.id)
        .with_for_update()
    )
    await begin_writing(session)
    return list(await session.scalars(query))


async def order_by_client_id(
    session: AsyncSession, user_id: int, client_order_id: str
) -> models.Order | None:
    return await session.scalar(
        select(models.Order).where(
            models.Order.user_id == user_id, models.Order.client_order_id == client_order_id
        )
    )


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Which of a user's orders a page shows; None (or empty) filters nothing.
    ``created_from`` is inclusive, ``created_to`` exclusive."""

    statuses: Sequence[str] | None = None
    symbol_code: str | None = None
    side: str | None = None
    type: str | None = None
    strategy_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


# Orders are listed newest first; the id is the keyset (stable under concurrent inserts).
ORDER_LIST = ListOrder(models.Order.id, descending=True)


def orders_query(user_id: int, filters: OrderFilter) -> Select[models.Order]:
    """The user's orders that ``filters`` keeps (no order or limit: see ``keyset``)."""
    order = models.Order
    query = select(order).where(order.user_id == user_id)
    if filters.statuses:
        query = query.where(order.status.in_(filters.statuses))
    if filters.symbol_code is not None:
        query = query.where(order.symbol_code == filters.symbol_code)
    if filters.side is not None:
        query = query.where(order.side == filters.side)
    if filters.type is not None:
        query = query.where(order.type == filters.type)
    if filters.strategy_id is not None:
        query = query.where(order.strategy_id == filters.strategy_id)
    if filters.created_from is not None:
        query = query.where(order.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(order.created_at < filters.created_to)
    return query


async def latest_orders_by_strategy_ids(
    session: AsyncSession, strategy_ids: Sequence[int], limit: int
) -> dict[int, list[models.Order]]:
    """The newest ``limit`` orders of each strategy, in one statement."""
    rank = (
        func.row_number()
        .over(partition_by=models.Order.strategy_id, order_by=models.Order.id.desc())
        .label("rank")
    )
    ranked = select(models.Order, rank).where(models.Order.strategy_id.in_(strategy_ids)).subquery()
    query = select(models.Order).from_statement(
        select(*ranked.c).where(ranked.c.rank <= limit).order_by(ranked.c.id.desc())
    )
    grouped: dict[int, list[models.Order]] = defaultdict(list)
    for order in await session.scalars(query):
        if order.strategy_id is not None:
            grouped[order.strategy_id].append(order)
    return grouped


async def orders_by_client_ids(
    session: AsyncSession, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], models.Order]:
    """Orders by ``(user_id, client_order_id)``, for idempotent replays of a batch."""
    if not keys:
        return {}
    result = await session.scalars(
        select(models.Order).where(
            tuple_(models.Order.user_id, models.Order.client_order_id).in_(sorted(set(keys)))
        )
    )
    return {(row.user_id, row.client_order_id or ""): row for row in result}
