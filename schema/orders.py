"""Order types, the order inputs and their payloads."""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, ForwardRef

import strawberry

from graphql_api.trading import order_types as domain
from resolvers import accounts as account_resolvers
from resolvers import strategies as strategy_resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from resolvers.pagination import parse_id
from schema.accounts import Trade
from schema.common import UserError, lazy_class
from schema.compiled import Amount, Column, Kind, ObjectReads, ToMany, ToOne
from schema.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from schema.market import Symbol, symbol_of
from storage import models

# ``schema.strategies`` imports this module (``Strategy.orders``); the way back
# (``Order.strategy``) names Strategy lazily, so the two modules form no cycle. It is a
# value, not a type alias: not even the type checker imports ``schema.strategies``.
StrategyRef: Any = Annotated[ForwardRef("Strategy"), strawberry.lazy("schema.strategies")]


@strawberry.type(description="A paper-traded order of the calling user.")
class Order:
    id: strawberry.ID = strawberry.field(description="Order id.")
    client_order_id: str | None = strawberry.field(
        description="The caller's idempotency key, if one was given."
    )
    side: OrderSide = strawberry.field(description="BUY or SELL.")
    type: OrderType = strawberry.field(description="MARKET, LIMIT, STOP or STOP_LIMIT.")
    time_in_force: TimeInForce = strawberry.field(description="How long the order may rest.")
    quantity: Decimal = strawberry.field(description="Ordered quantity.")
    limit_price: Decimal | None = strawberry.field(
        description="Limit price (LIMIT and STOP_LIMIT orders only)."
    )
    stop_price: Decimal | None = strawberry.field(
        description="Trigger price (STOP and STOP_LIMIT orders only)."
    )
    triggered_at: datetime | None = strawberry.field(
        description=(
            "When a tick's last price reached the stop price (stop orders only; null while "
            "waiting). From then on the order acts as a MARKET or LIMIT order."
        )
    )
    status: OrderStatus = strawberry.field(description="Current status.")
    filled_quantity: Decimal = strawberry.field(description="Quantity filled so far.")
    average_fill_price: Decimal | None = strawberry.field(
        description="Volume-weighted fill price; null before the first fill."
    )
    reject_reason: str | None = strawberry.field(
        description=(
            "Why a REJECTED order was refused, or why the server canceled an open one "
            "(e.g. TICK_SIZE_CHANGED)."
        )
    )
    expires_at: datetime | None = strawberry.field(
        description=(
            "When the order expires if still open: the close of its trading day for DAY, "
            "the given time for GTD; null for GTC (and for IOC, FOK and MARKET, which act on "
            "their next tick)."
        )
    )
    created_at: datetime = strawberry.field(description="When the order was accepted.")
    updated_at: datetime = strawberry.field(description="Last status change.")
    symbol_code: strawberry.Private[str]
    strategy_id: strawberry.Private[int | None]

    # The compiled read path (docs/compiled_reads.md): prices at the symbol's tick size,
    # quantities at its lot size, as ``from_row`` scales them.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="orders",
        fields={
            "id": Column("id", Kind.ID),
            "clientOrderId": Column("client_order_id", Kind.TEXT),
            "side": Column("side", Kind.ENUM),
            "type": Column("type", Kind.ENUM),
            "timeInForce": Column("time_in_force", Kind.ENUM),
            "quantity": Amount("quantity", step="lot_size", step_via="symbol_code"),
            "limitPrice": Amount("limit_price", step="tick_size", step_via="symbol_code"),
            "stopPrice": Amount("stop_price", step="tick_size", step_via="symbol_code"),
            "triggeredAt": Column("triggered_at", Kind.TIME),
            "status": Column("status", Kind.ENUM),
            "filledQuantity": Amount("filled_quantity", step="lot_size", step_via="symbol_code"),
            "averageFillPrice": Amount(
                "average_fill_price", step="tick_size", step_via="symbol_code"
            ),
            "rejectReason": Column("reject_reason", Kind.TEXT),
            "expiresAt": Column("expires_at", Kind.TIME),
            "createdAt": Column("created_at", Kind.TIME),
            "updatedAt": Column("updated_at", Kind.TIME),
            "symbol": ToOne(local="symbol_code", remote="code"),
            "strategy": ToOne(local="strategy_id", remote="id"),
            "fills": ToMany(local="id", remote="order_id", key="id", descending=False),
        },
    )

    @classmethod
    def from_row(cls, row: models.Order, scale: Amounts) -> Order:
        code = row.symbol_code
        return cls(
            id=strawberry.ID(str(row.id)),
            client_order_id=row.client_order_id,
            side=domain.OrderSide(row.side),
            type=domain.OrderType(row.type),
            time_in_force=domain.TimeInForce(row.time_in_force),
            quantity=scale.quantity(row.quantity, code),
            limit_price=_price(scale, row.limit_price, code),
            stop_price=_price(scale, row.stop_price, code),
            triggered_at=row.triggered_at,
            status=domain.OrderStatus(row.status),
            filled_quantity=scale.quantity(row.filled_quantity, code),
            average_fill_price=_price(scale, row.average_fill_price, code),
            reject_reason=row.reject_reason,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            symbol_code=row.symbol_code,
            strategy_id=row.strategy_id,
        )

    @strawberry.field(description="The instrument ordered.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)

    @strawberry.field(description="Its fills, oldest first.")
    async def fills(self, info: Info) -> list[Trade]:
        rows = await account_resolvers.order_fills(info, int(self.id))
        scale = amounts(info)
        return [Trade.from_row(row, scale) for row in rows]

    @strawberry.field(
        description="The strategy that placed the order, if any.",
        graphql_type=StrategyRef | None,
    )
    def strategy(self, info: Info) -> object | Awaitable[object | None] | None:
        if self.strategy_id is None:
            return None
        row = strategy_resolvers.known_strategy(info, self.strategy_id)
        return _strategy_class().from_row(row) if row is not None else self._load_strategy(info)

    async def _load_strategy(self, info: Info) -> object | None:
        assert self.strategy_id is not None
        row = await strategy_resolvers.strategy_by_id(info, self.strategy_id)
        return _strategy_class().from_row(row) if row is not None else None


@strawberry.input(description="A new order. Prices and quantities are decimal strings.")
class PlaceOrderInput:
    symbol: str = strawberry.field(description="Symbol code.")
    side: OrderSide = strawberry.field(description="BUY or SELL.")
    type: OrderType = strawberry.field(description="MARKET, LIMIT, STOP or STOP_LIMIT.")
    quantity: Decimal = strawberry.field(description="A positive multiple of the lot size.")
    limit_price: Decimal | None = strawberry.field(
        default=None,
        description=(
            "Required for LIMIT and STOP_LIMIT, forbidden for MARKET and STOP; on the tick grid."
        ),
    )
    stop_price: Decimal | None = strawberry.field(
        default=None,
        description=(
            "Required for STOP and STOP_LIMIT (forbidden otherwise), on the tick grid: a buy "
            "triggers when the last price is at or above it, a sell at or below it."
        ),
    )
    time_in_force: TimeInForce = strawberry.field(
        default=domain.TimeInForce.GTC, description="Defaults to GTC."
    )
    expires_at: datetime | None = strawberry.field(
        default=None,
        description=(
            "GTD only (and required there): when the order expires, with a UTC offset, in the "
            "future."
        ),
    )
    client_order_id: str | None = strawberry.field(
        default=None,
        description=(
            "Idempotency key (1-64 chars): repeating a request returns the same order; "
            "reusing the key for a different order is a CONFLICT."
        ),
    )
    strategy_id: strawberry.ID | None = strawberry.field(
        default=None, description="Attribute the order to one of your strategies."
    )

    def to_request(self) -> domain.OrderRequest:
        return domain.OrderRequest(
            symbol=self.symbol.upper(),
            side=domain.OrderSide(self.side.value),
            type=domain.OrderType(self.type.value),
            quantity=self.quantity,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            time_in_force=domain.TimeInForce(self.time_in_force.value),
            client_order_id=self.client_order_id,
            expires_at=self.expires_at,
            strategy_id=(
                parse_id(self.strategy_id, "strategyId") if self.strategy_id is not None else None
            ),
        )


@strawberry.type(description="Result of placeOrder.")
class PlaceOrderPayload:
    order: Order | None = strawberry.field(
        description="The order (also when REJECTED by risk checks); null when the input is invalid."
    )
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")


@strawberry.type(description="Result of cancelOrder.")
class CancelOrderPayload:
    order: Order | None = strawberry.field(description="The order as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why it could not be canceled.")


@strawberry.type(description="Result of amendOrder.")
class AmendOrderPayload:
    order: Order | None = strawberry.field(
        description="The order as it is now (unchanged when there are userErrors)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it could not be amended.")


@strawberry.type(description="Result of cancelAllOrders.")
class CancelAllOrdersPayload:
    orders: list[Order] = strawberry.field(
        description="The orders canceled, by id (empty when none was open)."
    )
    count: int = strawberry.field(description="How many orders were canceled.")
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was canceled (an unknown symbol)."
    )


@strawberry.type(description="Result of resetAccount.")
class ResetAccountPayload:
    canceled_orders: list[Order] = strawberry.field(
        description="The open orders the reset canceled, by id."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was reset (an unknown user)."
    )


def order_or_none(row: models.Order | None, scale: Amounts) -> Order | None:
    return Order.from_row(row, scale) if row is not None else None


def _price(scale: Amounts, value: Decimal | None, code: str) -> Decimal | None:
    return scale.price(value, code) if value is not None else None


@functools.cache
def _strategy_class() -> Any:
    return lazy_class(StrategyRef)
