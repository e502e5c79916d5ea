"""Checks of an order's fields that placement and amendment share.

A quantity or price an amendment brings is held to exactly the rules a new
order is, so the two paths cannot drift apart; the expiry check is placement's.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from graphql_api.market.symbols import SymbolSpec, is_multiple_of
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.trading.order_types import TimeInForce


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
