"""Checks of an order's fields that placement and amendment share.

A quantity or price an amendment brings is held to exactly the rules a new
order is, so the two paths cannot drift apart; the expiry check is placement's.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from graphql_api.market.symbols import SymbolSpec, is_multiple_of
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.trading.order_types import (
    IMMEDIATE_TIME_IN_FORCE,
    STOP_TYPES,
    OrderType,
    TimeInForce,
)


def check_quantity(quantity: Decimal, spec: SymbolSpec | None) -> list[UserError]:
    """A positive multiple of the lot size (placement and amendment alike)."""
    if not quantity.is_finite() or quantity <= 0:
        return [UserError("quantity", ErrorCode.OUT_OF_RANGE, "quantity must be positive")]
    if spec is not None and not is_multiple_of(quantity, spec.lot_size):
        return [
            UserError(
                "quantity",
                ErrorCode.INVALID_PRECISION,
                f"quantity {quantity} is not a multiple of the lot size {spec.lot_size}",
            )
        ]
    return []


def check_limit_price(price: Decimal | None, spec: SymbolSpec | None) -> list[UserError]:
    """A LIMIT order's price: given, positive and on the tick grid."""
    if price is None:
        return [UserError("limitPrice", ErrorCode.REQUIRED, "a LIMIT order needs a limitPrice")]
    if not price.is_finite() or price <= 0:
        return [UserError("limitPrice", ErrorCode.OUT_OF_RANGE, "limitPrice must be positive")]
    if spec is not None and not is_multiple_of(price, spec.tick_size):
        return [
            UserError(
                "limitPrice",
                ErrorCode.INVALID_PRECISION,
                f"limitPrice {price} is not a multiple of the tick size {spec.tick_size}",
            )
        ]
    return []


def check_expiry(
    time_in_force: TimeInForce, expires_at: datetime | None, now: datetime
) -> list[UserError]:
    """A GTD order needs an ``expiresAt`` with a UTC offset, in the future; no other
    order takes one (DAY orders expire at their session close, set by the server)."""
    if time_in_force is not TimeInForce.GTD:
        if expires_at is None:
            return []
        return [
            UserError("expiresAt", ErrorCode.NOT_ALLOWED, "only a GTD order takes an expiresAt")
        ]
    if expires_at is None:
        return [UserError("expiresAt", ErrorCode.REQUIRED, "a GTD order needs an expiresAt")]
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        return [
            UserError(
                "expiresAt",
                ErrorCode.INVALID,
                "expiresAt needs a UTC offset (for example 2026-12-31T07:00:00Z)",
            )
        ]
    if expires_at <= now:
        return [UserError("expiresAt", ErrorCode.OUT_OF_RANGE, "expiresAt must be in the future")]
    return []


def check_stop(
    order_type: OrderType,
    stop_price: Decimal | None,
    time_in_force: TimeInForce,
    spec: SymbolSpec | None,
) -> list[UserError]:
    """A STOP or STOP_LIMIT order needs a stop price on the tick grid and a time in
    force that lets it wait (GTC, DAY, GTD); no other order takes a stop price."""
    if order_type not in STOP_TYPES:
        if stop_price is None:
            return []
        return [UserError("stopPrice", ErrorCode.NOT_ALLOWED, "only stop orders take a stopPrice")]
    errors: list[UserError] = []
    if stop_price is None:
        errors.append(
            UserError(
                "stopPrice", ErrorCode.REQUIRED, f"a {order_type.value} order needs a stopPrice"
            )
        )
    elif not stop_price.is_finite() or stop_price <= 0:
        errors.append(UserError("stopPrice", ErrorCode.OUT_OF_RANGE, "stopPrice must be positive"))
    elif spec is not None and not is_multiple_of(stop_price, spec.tick_size):
        errors.append(
            UserError(
                "stopPrice",
                ErrorCode.INVALID_PRECISION,
                f"stopPrice {stop_price} is not a multiple of the tick size {spec.tick_size}",
            )
        )
    if time_in_force in IMMEDIATE_TIME_IN_FORCE:
        errors.append(
            UserError(
                "timeInForce",
                ErrorCode.NOT_ALLOWED,
                "a stop order waits for its trigger: GTC, DAY or GTD, not IOC or FOK",
            )
        )
    return errors
