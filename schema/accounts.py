"""The caller's paper-trading account: balances, positions and fills."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar

import strawberry

from resolvers import accounts as account_resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from schema.common import Connection, From, To
from schema.compiled import Amount, Column, Kind, ObjectReads, ToOne
from schema.enums import OrderSide
from schema.market import Symbol, symbol_of
from storage import models

AVERAGE_COST_STEP = Decimal("1e-8")


@strawberry.type(description="Cash in one currency.")
class Balance:
    currency: str = strawberry.field(description="Currency code (CNY, USDT, …).")
    cash: Decimal = strawberry.field(description="Cash held.")
    reserved: Decimal = strawberry.field(
        description="Cash held back by open BUY orders (remaining notional plus commission)."
    )
    buying_power: Decimal = strawberry.field(description="cash - reserved.")


@strawberry.type(description="A holding in one symbol (negative quantity: short).")
class Position:
    quantity: Decimal = strawberry.field(description="Signed quantity held.")
    cost_basis: Decimal = strawberry.field(description="Total cost of the open quantity.")
    average_cost: Decimal | None = strawberry.field(
        description="cost basis / quantity (8 decimals); null when flat."
    )
    realized_pnl: Decimal = strawberry.field(description="Profit realised by reducing trades.")
    symbol_code: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: models.Position, scale: Amounts) -> Position:
        code = row.symbol_code
        average = (
            (row.cost_basis / row.quantity).quantize(AVERAGE_COST_STEP, rounding=ROUND_HALF_UP)
            if row.quantity
            else None
        )
        return cls(
            quantity=scale.quantity(row.quantity, code),
            cost_basis=scale.quote_cash(row.cost_basis, code),
            average_cost=scale.price(average, code) if average is not None else None,
            realized_pnl=scale.quote_cash(row.realized_pnl, code),
            symbol_code=code,
        )

    @strawberry.field(description="The instrument held.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)

    @strawberry.field(description="Latest trade price; null before the first tick.")
    async def last_price(self, info: Info) -> Decimal | None:
        tick = await info.context.loaders.quote_by_symbol.load(self.symbol_code)
        return amounts(info).price(tick.last, self.symbol_code) if tick else None

    @strawberry.field(description="quantity × last price.")
    async def market_value(self, info: Info) -> Decimal | None:
        last = await self.last_price(info)
        if last is None:
            return None
        return amounts(info).quote_cash(self.quantity * last, self.symbol_code)

    @strawberry.field(description="market value - cost basis, at the latest quote.")
    async def unrealized_pnl(self, info: Info) -> Decimal | None:
        value = await self.market_value(info)
        if value is None:
            return None
        return amounts(info).quote_cash(value - self.cost_basis, self.symbol_code)


@strawberry.type(description="One fill of one of your orders.")
class Trade:
    id: strawberry.ID = strawberry.field(description="Trade id.")
    order_id: strawberry.ID = strawberry.field(description="The order it filled.")
    side: OrderSide = strawberry.field(description="BUY or SELL.")
    quantity: Decimal = strawberry.field(description="Quantity filled.")
    price: Decimal = strawberry.field(description="Fill price.")
    commission: Decimal = strawberry.field(description="Commission charged.")
    realized_pnl: Decimal = strawberry.field(description="P&L realised by this fill.")
    time: datetime = strawberry.field(description="Time of the tick it filled on.")
    symbol_code: strawberry.Private[str]

    # The compiled read path (docs/compiled_reads.md), for ``Order.fills``. Commission
    # and realized P&L are shown at the quote currency's minor unit, a table in Python:
    # they take the standard path.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="trades",
        fields={
            "id": Column("id", Kind.ID),
            "orderId": Column("order_id", Kind.ID),
            "side": Column("side", Kind.ENUM),
            "quantity": Amount("quantity", step="lot_size", step_via="symbol_code"),
            "price": Amount("price", step="tick_size", step_via="symbol_code"),
            "time": Column("tick_time", Kind.TIME),
            "symbol": ToOne(local="symbol_code", remote="code"),
        },
    )

    @classmethod
    def from_row(cls, row: models.Trade, scale: Amounts) -> Trade:
        code = row.symbol_code
        return cls(
            id=strawberry.ID(str(row.id)),
            order_id=strawberry.ID(str(row.order_id)),
            side=OrderSide(row.side),
            quantity=scale.quantity(row.quantity, code),
            price=scale.price(row.price, code),
            commission=scale.quote_cash(row.commission, code),
            realized_pnl=scale.quote_cash(row.realized_pnl, code),
            time=row.tick_time,
            symbol_code=row.symbol_code,
        )

    @strawberry.field(description="The instrument.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


@strawberry.type(description="Your paper-trading account.")
class Account:
    @strawberry.field(description="Cash per currency, with what open orders reserve.")
    async def balances(self, info: Info) -> list[Balance]:
        rows = await account_resolvers.balances(info)
        scale = amounts(info)
        return [
            Balance(
                currency=row.currency,
                cash=scale.cash(row.cash, row.currency),
                reserved=scale.cash(row.reserved, row.currency),
                buying_power=scale.cash(row.buying_power, row.currency),
            )
            for row in rows
        ]

    @strawberry.field(description="Open positions.")
    async def positions(self, info: Info) -> list[Position]:
        scale = amounts(info)
        return [Position.from_row(row, scale) for row in await account_resolvers.positions(info)]

    @strawberry.field(
        description=(
            "Your fills, newest first; every argument given narrows the list "
            "(`from`/`to` on the time of the tick a fill was made on)."
        )
    )
    async def trades(
        self,
        info: Info,
        symbol: str | None = None,
        side: OrderSide | None = None,
        from_: From = None,
        to: To = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Trade]:
        filters = account_resolvers.trade_filter(symbol, side, from_, to)
        page = await account_resolvers.trades(info, filters, first, after)
        scale = amounts(info)
        return Connection[Trade].build(
            page, kind="trade", key=lambda r: r.id, node=lambda r: Trade.from_row(r, scale)
        )
