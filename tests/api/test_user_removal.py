"""Removing a user removes everything they own, whatever the schema holds for them.

A user with one row in every table that refers to users (and in every table
hanging off those) is removed; each of those tables is checked to hold none of
theirs afterwards, and another user's rows to be untouched. The tables come
from the schema itself, so a new table with a user key fails here until the
removal clears it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.auth import Role
from graphql_api.services import Services
from storage import models

SYMBOL = "BTCUSDT"


def tables_owned_by_users() -> dict[str, Table]:
    """Tables with a key to ``users``, and the tables whose rows hang off them."""
    tables = models.Base.metadata.tables
    owned = {
        name: table
        for name, table in tables.items()
        if any(key.column.table.name == "users" for key in table.foreign_keys)
    }
    children = {
        name: table
        for name, table in tables.items()
        if name not in owned and any(key.column.table.name in owned for key in table.foreign_keys)
    }
    return owned | children


async def own_everything(session: AsyncSession, user_id: int, now: datetime) -> None:
    """One row of ``user_id``'s in every table a user owns rows in (ids are given so
    the children can name their parents; parents are flushed first)."""
    base = 900_000 + user_id
    session.add_all(
        [
            models.Strategy(
                id=base,
                user_id=user_id,
                name="s",
                kind="SMA_CROSS",
                symbol_code=SYMBOL,
                interval="1m",
                parameters={"fast": 5, "slow": 20},
                status="STOPPED",
                auto_trade=False,
                created_at=now,
                updated_at=now,
            ),
            models.Watchlist(
                id=base, user_id=user_id, name="w", name_key="w", created_at=now, updated_at=now
            ),
            models.Alert(
                id=base,
                user_id=user_id,
                symbol_code=SYMBOL,
                kind="PRICE_ABOVE",
                mode="ONCE",
                status="TRIGGERED",
                level=Decimal(1),
                created_at=now,
                updated_at=now,
            ),
            models.Webhook(
                id=base,
                user_id=user_id,
                url="https://example.com/hook",
                secret="x" * 32,
                events="ORDER_FILLED",
                created_at=now,
            ),
        ]
    )
    await session.flush()
    session.add(
        models.Order(
            id=base,
            user_id=user_id,
            symbol_code=SYMBOL,
            strategy_id=base,
            side="BUY",
            type="LIMIT",
            time_in_force="GTC",
            quantity=Decimal("0.01"),
            limit_price=Decimal(90000),
            status="FILLED",
            filled_quantity=Decimal("0.01"),
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    session.add_all(
        [
            models.Signal(
                strategy_id=base, symbol_code=SYMBOL, side="BUY", price=Decimal(90000),
                bar_time=now, reason="r", order_id=base, created_at=now,
            ),
            models.Trade(
                order_id=base, user_id=user_id, symbol_code=SYMBOL, side="BUY",
                quantity=Decimal("0.01"), price=Decimal(90000), commission=Decimal("0.9"),
                realized_pnl=Decimal(0), tick_time=now, created_at=now,
            ),
            models.Position(
                user_id=user_id, symbol_code=SYMBOL, quantity=Decimal("0.01"),
                cost_basis=Decimal(900), realized_pnl=Decimal(0), updated_at=now,
            ),
            models.SellReservation(user_id=user_id, symbol_code=SYMBOL, quantity=Decimal(0)),
            models.EquitySnapshot(
                user_id=user_id, currency="USDT", kind="INTRADAY", taken_at=now,
                cash=Decimal(1), positions_value=Decimal(0), equity=Decimal(1),
            ),
            models.AccountReset(user_id=user_id, reset_at=now, last_trade_id=0),
            models.SavedBacktest(
                user_id=user_id, name="b", kind="SMA_CROSS", symbol_code=SYMBOL,
                request={}, result={}, created_at=now,
            ),
            models.WatchlistEntry(watchlist_id=base, symbol_code=SYMBOL, position=0),
            models.AlertFiring(
                alert_id=base, user_id=user_id, symbol_code=SYMBOL, kind="PRICE_ABOVE",
                price=Decimal(2), message="m", triggered_at=now, created_at=now,
            ),
            models.WebhookDelivery(
                webhook_id=base, event="ORDER_FILLED", event_key=f"k{user_id}", payload="{}",
                status="PENDING", next_attempt_at=now, created_at=now,
            ),
            models.TickBatchKey(owner_id=user_id, batch_id="b", digest="d", created_at=now),
            models.AuthSession(
                id=f"00000000-0000-0000-0000-{user_id:012d}", user_id=user_id,
                refresh_jti=f"00000000-0000-0000-0001-{user_id:012d}", created_at=now,
                expires_at=now + timedelta(days=1),
            ),
        ]
    )  # fmt: skip


async def rows_of(session: AsyncSession, user_id: int) -> dict[str, int]:
    """How many rows of ``user_id``'s each owned table holds (children by their parent)."""
    counts: dict[str, int] = {}
    for name, table in tables_owned_by_users().items():
        owner = next(
            (key.parent for key in table.foreign_keys if key.column.table.name == "users"), None
        )
        if owner is not None:
            condition = owner == user_id
        else:
            [parent_key] = [key for key in table.foreign_keys if key.column.table.name != "symbols"]
            parent = parent_key.column.table
            parent_owner = next(
                key.parent for key in parent.foreign_keys if key.column.table.name == "users"
            )
            condition = parent_key.parent.in_(
                select(parent_key.column).where(parent_owner == user_id)
            )
        found = await session.scalar(select(func.count()).select_from(table).where(condition))
        counts[name] = found or 0
    return counts


async def test_removing_a_user_removes_every_row_they_own_and_nobody_else_s(
    services: Services,
) -> None:
    leaving, errors = await services.auth.register("leaving", "a-good-password", Role.TRADER)
    staying, more_errors = await services.auth.register("staying", "a-good-password", Role.TRADER)
    assert leaving is not None and staying is not None, (errors, more_errors)
    now = datetime.now(UTC)
    async with services.sessions() as session:
        await own_everything(session, leaving.id, now)
        await own_everything(session, staying.id, now)
        await session.commit()
    async with services.sessions() as session:
        before = await rows_of(session, leaving.id)
        theirs = await rows_of(session, staying.id)
    assert all(before.values()), (
        f"the test owns nothing in: {[n for n, c in before.items() if not c]}"
    )

    assert await services.auth.remove_user("leaving")

    async with services.sessions() as session:
        assert await rows_of(session, leaving.id) == dict.fromkeys(before, 0)
        assert await rows_of(session, staying.id) == theirs
        assert await session.get(models.User, leaving.id) is None
