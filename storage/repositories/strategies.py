"""Strategies and their signals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models
from storage.repositories.keyset import ListOrder


async def strategies_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[models.Strategy]:
    return list(await session.scalars(select(models.Strategy).where(models.Strategy.id.in_(ids))))


async def strategy_for_user(
    session: AsyncSession, user_id: int, strategy_id: int
) -> models.Strategy | None:
    return await session.scalar(
        select(models.Strategy).where(
            models.Strategy.id == strategy_id, models.Strategy.user_id == user_id
        )
    )


# Strategies are listed oldest first, keyset on the id.
STRATEGY_LIST = ListOrder(models.Strategy.id, descending=False)


@dataclass(frozen=True, slots=True)
class SignalFilter:
    """Which of a user's signals a page shows; None filters nothing. The time range
    is on the bar the signal fired on (``from`` inclusive, ``to`` exclusive)."""

    strategy_id: int | None = None
    symbol_code: str | None = None
    side: str | None = None
    bar_from: datetime | None = None
    bar_to: datetime | None = None


# Signals are listed newest first, keyset on the id.
SIGNAL_LIST = ListOrder(models.Signal.id, descending=True)


def signals_query(user_id: int, filters: SignalFilter) -> Select[models.Signal]:
    """The signals of the user's strategies that ``filters`` keeps (see ``keyset``)."""
    signal = models.Signal
    query = (
        select(signal)
        .join(models.Strategy, models.Strategy.id == signal.strategy_id)
        .where(models.Strategy.user_id == user_id)
    )
    if filters.strategy_id is not None:
        query = query.where(signal.strategy_id == filters.strategy_id)
    if filters.symbol_code is not None:
        query = query.where(signal.symbol_code == filters.symbol_code)
    if filters.side is not None:
        query = query.where(signal.side == filters.side)
    if filters.bar_from is not None:
        query = query.where(signal.bar_time >= filters.bar_from)
    if filters.bar_to is not None:
        query = query.where(signal.bar_time < filters.bar_to)
    return query


def strategies_query(user_id: int) -> Select[models.Strategy]:
    return select(models.Strategy).where(models.Strategy.user_id == user_id)


async def latest_signals_by_strategy_ids(
    session: AsyncSession, strategy_ids: Sequence[int], limit: int
) -> dict[int, list[models.Signal]]:
    """The newest ``limit`` signals of each strategy, in one statement."""
    rank = (
        func.row_number()
        .over(partition_by=models.Signal.strategy_id, order_by=models.Signal.id.desc())
        .label("rank")
    )
    ranked = (
        select(models.Signal, rank).where(models.Signal.strategy_id.in_(strategy_ids)).subquery()
    )
    query = select(models.Signal).from_statement(
        select(*ranked.c).where(ranked.c.rank <= limit).order_by(ranked.c.id.desc())
    )
    grouped: dict[int, list[models.Signal]] = defaultdict(list)
    for signal in await session.scalars(query):
        grouped[signal.strategy_id].append(signal)
    return grouped


async def strategy_owners(session: AsyncSession, ids: Sequence[int]) -> dict[int, int]:
    """``{strategy id: owner's user id}`` for the strategies of ``ids`` that exist."""
    if not ids:
        return {}
    rows = await session.execute(
        select(models.Strategy.id, models.Strategy.user_id).where(
            models.Strategy.id.in_(sorted(set(ids)))
        )
    )
    return {int(row[0]): int(row[1]) for row in rows}
