"""Amending a resting LIMIT order: a new price and/or quantity, as exchanges allow.

Only a LIMIT order that rests in the book (GTC, DAY or GTD; NEW or
PARTIALLY_FILLED) can be amended: MARKET, IOC and FOK orders act on their next
tick and never wait to be changed. ``quantity`` is the new *total* quantity,
filled part included (as in Binance's ``order.amend.keepPriority`` and CME
Globex's order modify); it must stay above what is already filled, or the
caller should cancel instead.

Time priority follows exchange practice: reducing the quantity keeps the
order's place in its queue; a new price or a larger quantity sends it to the
back of its (new) price level, as a cancel-replace would (CME Globex: "a
modification of price or an increase in quantity results in a loss of
priority"; Binance only amends in place a quantity decrease, and a
cancel-replace re-queues). The order keeps its id.

The amendment is held to the risk rules a new order is, over the account as
it would be without this order's current reservation: the price band, the
notional cap (on the whole order) and buying power or sellable quantity for
what stays open. A refusal is a user error with the code a placement would
have stored as ``rejectReason``, and nothing changes. Writing the new quantity
and price moves the kept reservation (:mod:`storage.repositories.reservations`)
by the difference in the same commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from graphql_api.platform.errors import ErrorCode, UserError, error_code_named
from graphql_api.trading.order_types import (
    OPEN_STATUSES,
    OrderSide,
    OrderType,
    TimeInForce,
)
from graphql_api.trading.risk import Exposure, RejectReason, reserved_cash
from storage import models

# Time in force of the LIMIT orders that rest in a price level.
RESTING_TIME_IN_FORCE = frozenset(
    {TimeInForce.GTC.value, TimeInForce.DAY.value, TimeInForce.GTD.value}
)


def not_amendable(order: models.Order) -> list[UserError]:
    """Why ``order`` cannot be amended at all (empty when it can)."""
    if order.status not in OPEN_STATUSES:
        return [
            UserError(
                "id",
                ErrorCode.NOT_AMENDABLE,
                f"order is {order.status}; only NEW or PARTIALLY_FILLED orders can be amended",
            )
        ]
    if order.type != OrderType.LIMIT.value or order.time_in_force not in RESTING_TIME_IN_FORCE:
        return [
            UserError(
                "id",
                ErrorCode.NOT_AMENDABLE,
                f"a {order.type} {order.time_in_force} order does not rest; only LIMIT orders "
                "that are GTC, DAY or GTD can be amended",
            )
        ]
    return []


def below_filled(order: models.Order, quantity: Decimal) -> list[UserError]:
    """The new total quantity must leave something to fill."""
    if quantity <= order.filled_quantity:
        return [
            UserError(
                "quantity",
                ErrorCode.OUT_OF_RANGE,
                f"quantity must exceed the {order.filled_quantity} already filled "
                "(cancel the order to stop it)",
            )
        ]
    return []


def loses_priority(order: models.Order, price: Decimal, quantity: Decimal) -> bool:
    """A new price or a larger quantity goes to the back of the queue; a smaller one does not."""
    return price != order.limit_price or quantity > order.quantity


def without_own_reservation(
    exposure: Exposure, order: models.Order, commission_rate: Decimal
) -> Exposure:
    """The account as if ``order`` reserved nothing: what an amendment may use."""
    remaining = order.quantity - order.filled_quantity
    if order.side == OrderSide.BUY.value:
        if order.reserve_price is None:
            return exposure
        held = reserved_cash(remaining, order.reserve_price, commission_rate)
        return replace(exposure, reserved_cash=exposure.reserved_cash - held)
    return replace(exposure, reserved_sell=exposure.reserved_sell - remaining)


def risk_error(reason: RejectReason, *, quantity_given: bool) -> UserError:
    """A risk refusal of an amendment, coded as a placement's ``rejectReason`` and
    pinned on the field that caused it."""
    field = {
        RejectReason.PRICE_OUT_OF_BAND: "limitPrice",
        RejectReason.MAX_NOTIONAL_EXCEEDED: "quantity",
        RejectReason.INSUFFICIENT_POSITION: "quantity",
        RejectReason.INSUFFICIENT_BUYING_POWER: "quantity" if quantity_given else "limitPrice",
    }.get(reason, "id")
    return UserError(
        field,
        error_code_named(reason.value),
        f"the amended order would be refused ({reason.value}); the order is unchanged",
    )


def apply(
    order: models.Order,
    *,
    price: Decimal,
    quantity: Decimal,
    reserve_price: Decimal | None,
    newest_order_id: int | None,
    now: datetime,
) -> None:
    """Write the amendment on the locked row.

    ``newest_order_id`` is given when the order loses its priority: it then
    ranks after that order (and after earlier amendments to the same anchor).
    """
    if newest_order_id is not None:
        order.queue_anchor = newest_order_id
        order.queued_at = now
    order.limit_price = price
    order.quantity = quantity
    if order.side == OrderSide.BUY.value:
        order.reserve_price = reserve_price
    order.version += 1
    order.updated_at = now
