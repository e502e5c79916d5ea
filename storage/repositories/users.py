"""Users."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models


async def user_by_username(session: AsyncSession, username: str) -> models.User | None:
    """Case- and width-insensitive: ``Demo`` finds ``demo`` (see :func:`models.username_key`)."""
    if "\x00" in username:  # never stored, and PostgreSQL refuses it in a query
        return None
    key = models.username_key(username)
    return await session.scalar(select(models.User).where(models.User.username_key == key))


async def user_by_id(session: AsyncSession, user_id: int) -> models.User | None:
    return await session.get(models.User, user_id)


async def delete_user(session: AsyncSession, user_id: int) -> None:
    """Delete the user and everything they own, children first (SQLite may not cascade)."""
    strategy_ids = select(models.Strategy.id).where(models.Strategy.user_id == user_id)
    order_ids = select(models.Order.id).where(models.Order.user_id == user_id)
    for statement in (
        delete(models.Trade).where(models.Trade.order_id.in_(order_ids)),
        delete(models.Trade).where(models.Trade.user_id == user_id),
        delete(models.Order).where(models.Order.user_id == user_id),
        delete(models.Signal).where(models.Signal.strategy_id.in_(strategy_ids)),
        delete(models.Strategy).where(models.Strategy.user_id == user_id),
        delete(models.Position).where(models.Position.user_id == user_id),
        delete(models.SellReservation).where(models.SellReservation.user_id == user_id),
        delete(models.CashBalance).where(models.CashBalance.user_id == user_id),
        delete(models.AuthSession).where(models.AuthSession.user_id == user_id),
        delete(models.User).where(models.User.id == user_id),
    ):
        await session.execute(statement)
