"""GraphQL enums: the domain's own Python enums, registered with Strawberry here.

``strawberry.enum`` returns the class it registers, so the names below are the
domain enums themselves; the domain modules never import Strawberry.
"""

from __future__ import annotations

import strawberry

from graphql_api import orders, strategies
from graphql_api.errors import ErrorCode
from storage import timeseries

strawberry.enum(orders.OrderSide, name="OrderSide", description="Buy or sell.")
OrderSide = orders.OrderSide

strawberry.enum(
    orders.OrderType,
    name="OrderType",
    description="MARKET fills at the next tick's price; LIMIT rests until the price is reached.",
)
OrderType = orders.OrderType

strawberry.enum(
    orders.TimeInForce,
    name="TimeInForce",
    description=(
        "GTC: good till canceled; DAY: expires at the symbol's session end; "
        "IOC: whatever cannot fill on the next tick is canceled."
    ),
)
TimeInForce = orders.TimeInForce

strawberry.enum(
    orders.OrderStatus, name="OrderStatus", description="Order lifecycle, as exchanges name it."
)
OrderStatus = orders.OrderStatus

strawberry.enum(
    strategies.StrategyStatus, name="StrategyStatus", description="Whether a strategy is running."
)
StrategyStatus = strategies.StrategyStatus

strawberry.enum(
    strategies.StrategyKind,
    name="StrategyKind",
    description="Signal rule a strategy runs; see `strategyKinds` for each kind's parameters.",
)
StrategyKind = strategies.StrategyKind

strawberry.enum(
    timeseries.KlineInterval,
    name="KlineInterval",
    description=(
        "Bar width. Intraday bars are aggregated from stored ticks, aligned to the Unix "
        "epoch in UTC; DAY_1 bars are the stored daily history."
    ),
)
KlineInterval = timeseries.KlineInterval

strawberry.enum(
    ErrorCode, name="UserErrorCode", description="Why a mutation refused part of its input."
)
UserErrorCode = ErrorCode
