"""GraphQL enums: the domain's own Python enums, registered with Strawberry here.

``strawberry.enum`` returns the class it registers, so the names below are the
domain enums themselves; the domain modules never import Strawberry.
"""

from __future__ import annotations

import strawberry

from graphql_api import instruments
from graphql_api.alerts import conditions as alerts
from graphql_api.auth import principal
from graphql_api.market import sessions
from graphql_api.platform.errors import ErrorCode
from graphql_api.strategies import definitions as strategies
from graphql_api.trading import order_types
from graphql_api.webhooks import registry as webhooks
from storage import timeseries

strawberry.enum(order_types.OrderSide, name="OrderSide", description="Buy or sell.")
OrderSide = order_types.OrderSide

strawberry.enum(
    order_types.OrderType,
    name="OrderType",
    description=(
        "MARKET fills at the next tick's price; LIMIT rests until the price is reached; "
        "STOP and STOP_LIMIT wait until the last price reaches stopPrice, then act as "
        "MARKET or LIMIT."
    ),
)
OrderType = order_types.OrderType

strawberry.enum(
    order_types.TimeInForce,
    name="TimeInForce",
    description=(
        "GTC: good till canceled; DAY: expires at the close of the symbol's trading day "
        "(Symbol.session.dayClose); "
        "GTD: good till the order's expiresAt; "
        "IOC: whatever cannot fill on the next tick expires; "
        "FOK: fills completely on the next tick or expires without any fill."
    ),
)
TimeInForce = order_types.TimeInForce

strawberry.enum(
    order_types.OrderStatus,
    name="OrderStatus",
    description="Order lifecycle, as exchanges name it.",
)
OrderStatus = order_types.OrderStatus

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

strawberry.enum(principal.Role, name="Role", description="VIEWER, TRADER, FEED or ADMIN.")
Role = principal.Role

strawberry.enum(
    instruments.AuditAction,
    name="SymbolAuditAction",
    description="What an administrator did to a symbol.",
)
SymbolAuditAction = instruments.AuditAction

strawberry.enum(sessions.Weekday, name="Weekday", description="A day of the week, MON to SUN.")
Weekday = sessions.Weekday

strawberry.enum(
    sessions.OffSessionOrders,
    name="OffSessionOrders",
    description=(
        "What an order placed while its symbol's session is closed gets: REFUSE (REJECTED "
        "with MARKET_CLOSED) or REST (accepted; nothing fills it before the next open)."
    ),
)
OffSessionOrders = sessions.OffSessionOrders
strawberry.enum(
    alerts.AlertKind,
    name="AlertKind",
    description=(
        "What an alert watches: the last price crossing `level` (from below / from above), "
        "the price rising / falling `percent` % within `windowSeconds`, or an indicator of "
        "closed bars crossing `level`."
    ),
)
AlertKind = alerts.AlertKind

strawberry.enum(
    alerts.AlertMode,
    name="AlertMode",
    description="ONCE: fires one time, then is FIRED; REARM: fires at every new crossing.",
)
AlertMode = alerts.AlertMode

strawberry.enum(
    alerts.AlertStatus,
    name="AlertStatus",
    description=(
        "ACTIVE: evaluated; PAUSED: kept but not evaluated; FIRED: a ONCE alert that fired; "
        "EXPIRED: past its expiresAt."
    ),
)
AlertStatus = alerts.AlertStatus

strawberry.enum(
    alerts.AlertIndicator,
    name="AlertIndicator",
    description="RSI (Wilder), SMA or EMA of bar closes, TA-Lib conventions.",
)
AlertIndicator = alerts.AlertIndicator

strawberry.enum(
    webhooks.WebhookEvent,
    name="WebhookEvent",
    description=(
        "Events a webhook can receive: ALERT_FIRED, a firing of one of your alerts; "
        "STRATEGY_SIGNAL, a signal of one of your running strategies; ORDER_FILLED, each "
        "fill of one of your orders."
    ),
)
WebhookEvent = webhooks.WebhookEvent

strawberry.enum(
    webhooks.DeliveryStatus,
    name="WebhookDeliveryStatus",
    description=(
        "PENDING: not yet answered with 2xx (retried with backoff); DELIVERED: answered 2xx; "
        "DEAD: given up after the last attempt (or the address is not allowed)."
    ),
)
WebhookDeliveryStatus = webhooks.DeliveryStatus
