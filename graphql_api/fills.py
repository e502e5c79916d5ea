"""Applying one fill: trade, position, cash and order status in ONE transaction.

The order row is locked and its ``version`` must still be the one the matcher
saw; otherwise (canceled meanwhile, filled by a previous leader) nothing is
written. That check is what makes fills exactly-once across a leader change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.accounts import round_cash
from graphql_api.order_types import OPEN_STATUSES, OrderSide, OrderStatus
from graphql_api.risk import RejectReason
from storage import models
from storage.repositories import accounts as account_repo

AVERAGE_PRICE_STEP = Decimal("1e-10")


@dataclass(frozen=True, slots=True)
class PositionChange:
    quantity: Decimal
    cost_basis: Decimal
    realized: Decimal


def position_after(
    quantity: Decimal,
    cost_basis: Decimal,
    side: OrderSide,
    fill: Decimal,
    price: Decimal,
    currency: str,
) -> PositionChange:
    """Signed position arithmetic: reduce (realising P&L) first, then open the rest.

    The basis removed on a partial reduction is pro rata, rounded to the
    currency's minor unit; the realised P&L is defined from that same rounded
    amount, so cash + basis - realised stays exactly conserved.
    """
    signed = fill if side is OrderSide.BUY else -fill
    if quantity == 0 or (quantity > 0) == (signed > 0):
        return PositionChange(quantity + signed, cost_basis + signed * price, Decimal(0))
    closing = min(abs(quantity), fill)
    if closing == abs(quantity):
        removed = cost_basis
    else:
        removed = round_cash(cost_basis * closing / abs(quantity), currency)
    direction = 1 if quantity > 0 else -1
    realized = direction * closing * price - removed
    basis = cost_basis - removed
    opening = fill - closing
    if opening > 0:
        basis += (opening if signed > 0 else -opening) * price
    return PositionChange(quantity + signed, basis, realized)


@dataclass(frozen=True, slots=True)
class FillOutcome:
    order: models.Order
    trade: models.Trade | None


async def apply_fill(
    session: AsyncSession,
    *,
    order_id: int,
    expected_version: int,
    quantity: Decimal,
    price: Decimal,
    tick_time: datetime,
    currency: str,
    commission_rate: Decimal,
    allow_short: bool,
) -> FillOutcome | None:
    """Fill up to ``quantity`` at ``price``; None when the order moved on meanwhile.

    The caller commits. A fill the account can no longer afford (a market buy
    whose price ran past its reservation, a sell whose position is gone) closes
    the order as CANCELED with the reason instead.
    """
    order = await session.scalar(
        select(models.Order).where(models.Order.id == order_id).with_for_update()
    )
    if order is None or order.status not in OPEN_STATUSES or order.version != expected_version:
        return None
    now = datetime.now(UTC)
    fill = min(quantity, order.quantity - order.filled_quantity)
    side = OrderSide(order.side)
    balance = await account_repo.balance(session, order.user_id, currency, for_update=True)
    position = await account_repo.position(
        session, order.user_id, order.symbol_code, for_update=True
    )
    cash = balance.amount if balance else Decimal(0)
    held = position.quantity if position else Decimal(0)
    notional = fill * price
    commission = round_cash(notional * commission_rate, currency)
    if side is OrderSide.BUY and cash < notional + commission:
        return FillOutcome(_close(order, RejectReason.INSUFFICIENT_FUNDS_AT_FILL, now), None)
    if side is OrderSide.SELL and not allow_short and held < fill:
        return FillOutcome(_close(order, RejectReason.INSUFFICIENT_POSITION, now), None)

    change = position_after(
        held, position.cost_basis if position else Decimal(0), side, fill, price, currency
    )
    if position is None:
        position = models.Position(
            user_id=order.user_id,
            symbol_code=order.symbol_code,
            quantity=Decimal(0),
            cost_basis=Decimal(0),
            realized_pnl=Decimal(0),
            updated_at=now,
        )
        session.add(position)
    position.quantity = change.quantity
    position.cost_basis = change.cost_basis
    position.realized_pnl += change.realized
    position.updated_at = now

    if balance is None:
        balance = models.CashBalance(
            user_id=order.user_id, currency=currency, amount=Decimal(0), updated_at=now
        )
        session.add(balance)
    balance.amount += -notional - commission if side is OrderSide.BUY else notional - commission
    balance.updated_at = now

    trade = models.Trade(
        order_id=order.id,
        user_id=order.user_id,
        symbol_code=order.symbol_code,
        side=order.side,
        quantity=fill,
        price=price,
        commission=commission,
        realized_pnl=change.realized,
        tick_time=tick_time,
        created_at=now,
    )
    session.add(trade)

    previous = order.filled_quantity
    order.filled_quantity = previous + fill
    prior_value = (order.average_fill_price or Decimal(0)) * previous
    order.average_fill_price = ((prior_value + notional) / order.filled_quantity).quantize(
        AVERAGE_PRICE_STEP
    )
    order.status = (
        OrderStatus.FILLED.value
        if order.filled_quantity == order.quantity
        else OrderStatus.PARTIALLY_FILLED.value
    )
    order.version += 1
    order.updated_at = now
    await session.flush()
    return FillOutcome(order, trade)


async def close_order(
    session: AsyncSession,
    *,
    order_id: int,
    expected_version: int,
    status: OrderStatus,
    reason: str | None = None,
) -> models.Order | None:
    """Expire or cancel an open order if it is still as the caller saw it."""
    order = await session.scalar(
        select(models.Order).where(models.Order.id == order_id).with_for_update()
    )
    if order is None or order.status not in OPEN_STATUSES or order.version != expected_version:
        return None
    order.status = status.value
    if reason is not None:
        order.reject_reason = reason
    order.version += 1
    order.updated_at = datetime.now(UTC)
    await session.flush()
    return order


def _close(order: models.Order, reason: RejectReason, now: datetime) -> models.Order:
    order.status = OrderStatus.CANCELED.value
    order.reject_reason = reason.value
    order.version += 1
    order.updated_at = now
    return order
