"""The caller's account: balances with reservations, positions and fills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from graphql_api.trading.order_types import OrderSide
from graphql_api.trading.risk import reserved_cash
from resolvers.context import Info
from resolvers.pagination import Page, Paging, check_time_range, read_page
from storage import models
from storage.repositories import accounts as account_repo


@dataclass(frozen=True, slots=True)
class BalanceView:
    currency: str
    cash: Decimal
    reserved: Decimal

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self.reserved


async def balances(info: Info) -> list[BalanceView]:
    policy = info.context.services.orders.risk_policy
    async with info.context.services.sessions() as session:
        rows = await account_repo.balances(session, info.context.user_id)
        open_orders = await account_repo.open_orders_with_currency(session, info.context.user_id)
    reserved: dict[str, Decimal] = {}
    for order, currency in open_orders:
        if order.side == OrderSide.BUY.value and order.reserve_price is not None:
            remaining = order.quantity - order.filled_quantity
            reserved[currency] = reserved.get(currency, Decimal(0)) + reserved_cash(
                remaining, order.reserve_price, policy.commission_rate
            )
    return [
        BalanceView(row.currency, row.amount, reserved.get(row.currency, Decimal(0)))
        for row in rows
    ]


async def positions(info: Info) -> list[models.Position]:
    async with info.context.services.sessions() as session:
        return await account_repo.positions(session, info.context.user_id)


def trade_filter(
    symbol: str | None, side: OrderSide | None, time_from: datetime | None, time_to: datetime | None
) -> account_repo.TradeFilter:
    return account_repo.TradeFilter(
        symbol_code=symbol.upper() if symbol else None,
        side=side.value if side is not None else None,
        time_from=time_from,
        time_to=time_to,
    )


async def trades(
    info: Info, filters: account_repo.TradeFilter, paging: Paging
) -> Page[models.Trade]:
    window = paging.window("trade", info.context.services.settings.max_page_size)
    check_time_range(filters.time_from, filters.time_to)
    query = account_repo.trades_query(info.context.user_id, filters)
    return await read_page(info.context.services.sessions, query, account_repo.TRADE_LIST, window)


async def order_fills(info: Info, order_id: int) -> list[models.Trade]:
    return await info.context.loaders.trades_by_order.load(order_id)
