"""Strategies and their signals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models


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


async def strategies_page(
    session: AsyncSession, *, user_id: int, after_id: int | None, limit: int
) -> list[models.Strategy]:
    query = (
        select(models.Strategy)
        .where(models.Strategy.user_id == user_id)
        .order_by(models.Strategy.id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(models.Strategy.id > after_id)
    return list(await session.scalars(query))


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
