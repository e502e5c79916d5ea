"""Applying one fill: trade, position, cash and order status in ONE transaction.

The order row is locked and its ``version`` must still be the one the matcher
saw; otherwise (canceled meanwhile, filled by a previous leader) nothing is
written. That check is what makes fills exactly-once across a leader change.

A BUY spends only what it reserved (:func:`fit_buy_to_reservation`): cash that
other open orders reserve is never touched, so buying power never goes below
zero and a properly reserved order is never starved by another one's fill.

The arithmetic lives in pure functions (:func:`decide_fill`,
:func:`order_after_fill`) shared with the batched writer the matcher uses
(:mod:`graphql_api.trading.fill_batch`); :func:`apply_fill` is the
one-transaction-per-fill path, kept as the reference the batch is tested
against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.trading.accounts import currency_unit, round_cash
from graphql_api.trading.order_types import OPEN_STATUSES, OrderSide, OrderStatus
from graphql_api.trading.risk import RejectReason, reserved_cash
from storage import models
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo
from storage.repositories import reservations

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
class BuyFill:
    """How much of a BUY fill its reservation pays for.

    ``quantity`` 0 means none: the order is refused at this price.
    ``cancel_rest``: what the order still holds no longer covers its remaining
    quantity (the price ran past the reservation), so the rest is canceled.
    """

    quantity: Decimal
    commission: Decimal
    cancel_rest: bool


def fit_buy_to_reservation(
    *,
    wanted: Decimal,
    remaining: Decimal,
    price: Decimal,
    reserve_price: Decimal,
    lot_size: Decimal,
    commission_rate: Decimal,
    currency: str,
) -> BuyFill:
    """Size a BUY fill so it never spends more than the order reserved.

    The order holds ``reserved_cash(remaining, reserve_price)``. A fill at or
    below the reserve price releases at least what it costs, so it fills as
    asked and the rest stays reserved. A fill above it (a MARKET buy whose
    price ran past the buffer) fills only what the whole holding pays for, in
    whole lots, commission included, and the rest is canceled: its
    reservation has been spent.

    Commission is rounded half-up to the currency's minor unit; where that
    half unit would come out of the rest's reservation (a fill exactly at the
    reserve price), it is rounded down instead.
    """
    held = reserved_cash(remaining, reserve_price, commission_rate)
    unit = currency_unit(currency)

    def commission_within(quantity: Decimal, allowance: Decimal) -> Decimal | None:
        """The fill's commission if it costs at most ``allowance``, else None."""
        notional = quantity * price
        exact = notional * commission_rate
        for commission in (round_cash(exact, currency), exact.quantize(unit, ROUND_DOWN)):
            if notional + commission <= allowance:
                return commission
        return None

    quantity = min(wanted, remaining)
    # At or below the reserve price: the fill costs no more than it releases.
    rest_needs = reserved_cash(remaining - quantity, reserve_price, commission_rate)
    commission = commission_within(quantity, held - rest_needs)
    if commission is not None:
        return BuyFill(quantity, commission, cancel_rest=False)
    # Above it: whole lots within the whole holding, and the rest is canceled.
    affordable = (held / (price * (1 + commission_rate)) // lot_size) * lot_size
    fit = min(quantity, affordable)
    while fit + lot_size <= quantity and commission_within(fit + lot_size, held) is not None:
        fit += lot_size
    while fit > 0 and commission_within(fit, held) is None:
        fit -= lot_size
    if fit <= 0:
        return BuyFill(Decimal(0), Decimal(0), cancel_rest=True)
    commission = commission_within(fit, held)
    assert commission is not None
    return BuyFill(fit, commission, cancel_rest=fit < remaining)


@dataclass(frozen=True, slots=True)
class FillDecision:
    """What one fill does, decided from the order and its account as they stand.

    ``refusal`` set: no trade; the order is closed as CANCELED with that reason.
    Otherwise ``quantity`` fills at the price for ``commission``, the cash
    balance moves by ``cash_change`` and the position becomes ``position``.
    """

    refusal: RejectReason | None
    quantity: Decimal
    commission: Decimal
    cancel_rest: bool
    cash_change: Decimal
    position: PositionChange | None


def decide_fill(
    *,
    side: OrderSide,
    remaining: Decimal,
    reserve_price: Decimal | None,
    cash: Decimal,
    held: Decimal,
    cost_basis: Decimal,
    quantity: Decimal,
    price: Decimal,
    currency: str,
    commission_rate: Decimal,
    allow_short: bool,
    lot_size: Decimal,
    all_or_none: bool,
) -> FillDecision:
    """The arithmetic of one fill, with no I/O: :func:`apply_fill` and the batched
    writer (:mod:`graphql_api.trading.fill_batch`) both decide through it, so the
    two paths agree to the last unit by construction."""
    fill = min(quantity, remaining)
    if all_or_none and fill < remaining:
        raise ValueError("an all-or-none fill must ask for the whole remaining quantity")
    commission = round_cash(fill * price * commission_rate, currency)
    cancel_rest = False
    if side is OrderSide.BUY and reserve_price is not None:
        sized = fit_buy_to_reservation(
            wanted=fill,
            remaining=remaining,
            price=price,
            reserve_price=reserve_price,
            lot_size=lot_size,
            commission_rate=commission_rate,
            currency=currency,
        )
        fill, commission, cancel_rest = sized.quantity, sized.commission, sized.cancel_rest
    if all_or_none and fill < remaining:
        # Only a BUY's reservation can cut a whole fill (the matcher asks FOK
        # orders for all or nothing): then it is refused as a MARKET buy's is.
        fill = Decimal(0)
    notional = fill * price
    # The last line of defence: cash itself never goes negative.
    if side is OrderSide.BUY and (fill <= 0 or cash < notional + commission):
        return _refused(RejectReason.INSUFFICIENT_FUNDS_AT_FILL)
    if side is OrderSide.SELL and not allow_short and held < fill:
        return _refused(RejectReason.INSUFFICIENT_POSITION)
    change = position_after(held, cost_basis, side, fill, price, currency)
    cash_change = -notional - commission if side is OrderSide.BUY else notional - commission
    return FillDecision(None, fill, commission, cancel_rest, cash_change, change)


def _refused(reason: RejectReason) -> FillDecision:
    return FillDecision(reason, Decimal(0), Decimal(0), False, Decimal(0), None)


@dataclass(frozen=True, slots=True)
class OrderAfterFill:
    filled_quantity: Decimal
    average_fill_price: Decimal
    status: OrderStatus
    reject_reason: RejectReason | None


def order_after_fill(
    *,
    quantity: Decimal,
    filled_quantity: Decimal,
    average_fill_price: Decimal | None,
    fill: Decimal,
    price: Decimal,
    cancel_rest: bool,
) -> OrderAfterFill:
    """The order's fill totals and status once ``fill`` more is done at ``price``."""
    filled = filled_quantity + fill
    prior_value = (average_fill_price or Decimal(0)) * filled_quantity
    average = ((prior_value + fill * price) / filled).quantize(AVERAGE_PRICE_STEP)
    if filled == quantity:
        return OrderAfterFill(filled, average, OrderStatus.FILLED, None)
    if cancel_rest:
        return OrderAfterFill(
            filled, average, OrderStatus.CANCELED, RejectReason.INSUFFICIENT_FUNDS_AT_FILL
        )
    return OrderAfterFill(filled, average, OrderStatus.PARTIALLY_FILLED, None)


@dataclass(frozen=True, slots=True)
class FillOutcome:
    order: models.Order
    trade: models.Trade | None

    @property
    def filled(self) -> Decimal:
        """Quantity this fill wrote (0 when it was refused)."""
        return self.trade.quantity if self.trade is not None else Decimal(0)


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
    lot_size: Decimal,
    all_or_none: bool = False,
) -> FillOutcome | None:
    """Fill up to ``quantity`` at ``price``; None when the order moved on meanwhile.

    The caller commits. A BUY fills at most what its reservation pays for
    (:func:`fit_buy_to_reservation`); when that is nothing, or a SELL's
    position is gone, the order is closed as CANCELED with the reason and no
    trade, cash or position is written. With ``all_or_none`` (FOK) a fill smaller
    than the whole remaining quantity is no fill: the order is closed the same way.
    """
    order = await _lock_open_order(session, order_id, expected_version)
    if order is None:
        return None
    now = datetime.now(UTC)
    held = reservations.order_hold(order)
    balance = await account_repo.balance(session, order.user_id, currency, for_update=True)
    position = await account_repo.position(
        session, order.user_id, order.symbol_code, for_update=True
    )
    decision = decide_fill(
        side=OrderSide(order.side),
        remaining=order.quantity - order.filled_quantity,
        reserve_price=order.reserve_price,
        cash=balance.amount if balance else Decimal(0),
        held=position.quantity if position else Decimal(0),
        cost_basis=position.cost_basis if position else Decimal(0),
        quantity=quantity,
        price=price,
        currency=currency,
        commission_rate=commission_rate,
        allow_short=allow_short,
        lot_size=lot_size,
        all_or_none=all_or_none,
    )
    if decision.refusal is not None:
        _close(order, decision.refusal, now)
        await _release(session, order, held, now, {order.symbol_code: currency})
        return FillOutcome(order, None)
    change = decision.position
    assert change is not None
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
    balance.amount += decision.cash_change
    balance.updated_at = now

    trade = models.Trade(
        order_id=order.id,
        user_id=order.user_id,
        symbol_code=order.symbol_code,
        side=order.side,
        quantity=decision.quantity,
        price=price,
        commission=decision.commission,
        realized_pnl=change.realized,
        tick_time=tick_time,
        created_at=now,
    )
    session.add(trade)

    after = order_after_fill(
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        average_fill_price=order.average_fill_price,
        fill=decision.quantity,
        price=price,
        cancel_rest=decision.cancel_rest,
    )
    order.filled_quantity = after.filled_quantity
    order.average_fill_price = after.average_fill_price
    order.status = after.status.value
    if after.reject_reason is not None:
        order.reject_reason = after.reject_reason.value
    order.version += 1
    order.updated_at = now
    await session.flush()
    await _release(session, order, held, now, {order.symbol_code: currency})
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
    order = await _lock_open_order(session, order_id, expected_version)
    if order is None:
        return None
    held = reservations.order_hold(order)
    order.status = status.value
    if reason is not None:
        order.reject_reason = reason
    order.version += 1
    order.updated_at = datetime.now(UTC)
    await session.flush()
    await _release(session, order, held, order.updated_at, None)
    return order


async def trigger_order(
    session: AsyncSession, *, order_id: int, expected_version: int, at: datetime
) -> models.Order | None:
    """Record that a tick stamped ``at`` triggered a stop order, if it is still as the
    caller saw it (fenced like a fill: a trigger is recorded once)."""
    order = await _lock_open_order(session, order_id, expected_version)
    if order is None or order.triggered_at is not None:
        return None
    order.triggered_at = at
    order.version += 1
    order.updated_at = datetime.now(UTC)
    await session.flush()
    return order


async def _lock_open_order(
    session: AsyncSession, order_id: int, expected_version: int
) -> models.Order | None:
    """The order, row-locked until the caller's transaction ends, if it is still open
    and at ``expected_version`` (what the caller decided on); None when it moved on."""
    await order_repo.begin_writing(session)
    order = await session.scalar(
        select(models.Order).where(models.Order.id == order_id).with_for_update()
    )
    if order is None or order.status not in OPEN_STATUSES or order.version != expected_version:
        return None
    return order


async def _release(
    session: AsyncSession,
    order: models.Order,
    held: Decimal,
    now: datetime,
    currency_of: dict[str, str] | None,
) -> None:
    """Write what ``order`` stopped reserving (it held ``held`` before this change)."""
    changes = reservations.ReservationChanges()
    changes.order_changed(order, held)
    await reservations.write(session, changes, now=now, currency_of=currency_of)


def _close(order: models.Order, reason: RejectReason, now: datetime) -> models.Order:
    order.status = OrderStatus.CANCELED.value
    order.reject_reason = reason.value
    order.version += 1
    order.updated_at = now
    return order
