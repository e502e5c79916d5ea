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
    """Delete the user and everything they own, children first (SQLite may not cascade).

    Every table with a foreign key to ``users`` is cleared here, and so is every
    table whose rows hang off one of those (tests/api/test_user_removal.py holds
    this list to the schema).
    """
    strategy_ids = select(models.Strategy.id).where(models.Strategy.user_id == user_id)
    order_ids = select(models.Order.id).where(models.Order.user_id == user_id)
    watchlist_ids = select(models.Watchlist.id).where(models.Watchlist.user_id == user_id)
    alert_ids = select(models.Alert.id).where(models.Alert.user_id == user_id)
    webhook_ids = select(models.Webhook.id).where(models.Webhook.user_id == user_id)
    for statement in (
        delete(models.Trade).where(models.Trade.order_id.in_(order_ids)),
        delete(models.Trade).where(models.Trade.user_id == user_id),
        delete(models.Order).where(models.Order.user_id == user_id),
        delete(models.Signal).where(models.Signal.strategy_id.in_(strategy_ids)),
        delete(models.Strategy).where(models.Strategy.user_id == user_id),
        delete(models.Position).where(models.Position.user_id == user_id),
        delete(models.SellReservation).where(models.SellReservation.user_id == user_id),
        delete(models.CashBalance).where(models.CashBalance.user_id == user_id),
        delete(models.EquitySnapshot).where(models.EquitySnapshot.user_id == user_id),
        delete(models.AccountReset).where(models.AccountReset.user_id == user_id),
        delete(models.SavedBacktest).where(models.SavedBacktest.user_id == user_id),
        delete(models.WatchlistEntry).where(models.WatchlistEntry.watchlist_id.in_(watchlist_ids)),
        delete(models.Watchlist).where(models.Watchlist.user_id == user_id),
        delete(models.AlertFiring).where(models.AlertFiring.alert_id.in_(alert_ids)),
        delete(models.AlertFiring).where(models.AlertFiring.user_id == user_id),
        delete(models.Alert).where(models.Alert.user_id == user_id),
        delete(models.WebhookDelivery).where(models.WebhookDelivery.webhook_id.in_(webhook_ids)),
        delete(models.Webhook).where(models.Webhook.user_id == user_id),
        delete(models.TickBatchKey).where(models.TickBatchKey.owner_id == user_id),
        delete(models.AuthSession).where(models.AuthSession.user_id == user_id),
        delete(models.User).where(models.User.id == user_id),
    ):
        await session.execute(statement)
