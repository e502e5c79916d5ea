"""Pre-trade risk checks: pure functions over a snapshot of the account.

``OrderService`` gathers the snapshot inside the placement transaction (with
the user's balance row locked) and asks :func:`assess`; a refusal becomes a
REJECTED order carrying the reason code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from graphql_api.market.sessions import OffSessionOrders
from graphql_api.market.symbols import SymbolSpec
from graphql_api.trading.order_types import LIMIT_TYPES, OrderRequest, OrderSide, OrderType
from storage.timeseries import Tick

HUNDRED = Decimal(100)


class RejectReason(enum.Enum):
    SYMBOL_NOT_TRADABLE = "SYMBOL_NOT_TRADABLE"
    # Placed outside the symbol's trading session, whose policy is to refuse such
    # orders (OffSessionOrders.REFUSE); with REST they are accepted and wait.
    MARKET_CLOSED = "MARKET_CLOSED"
    NO_MARKET_PRICE = "NO_MARKET_PRICE"
    PRICE_OUT_OF_BAND = "PRICE_OUT_OF_BAND"
    MAX_NOTIONAL_EXCEEDED = "MAX_NOTIONAL_EXCEEDED"
    INSUFFICIENT_BUYING_POWER = "INSUFFICIENT_BUYING_POWER"
    INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"
    # At fill time: a MARKET buy's price ran past what it reserved. It fills what
    # the reservation pays for (whole lots) and the rest is canceled with this.
    INSUFFICIENT_FUNDS_AT_FILL = "INSUFFICIENT_FUNDS_AT_FILL"
    # At an administrator's change of the symbol: a resting order whose limit price
    # (or remaining quantity) is off the new tick (or lot) grid is canceled with this.
    TICK_SIZE_CHANGED = "TICK_SIZE_CHANGED"
    LOT_SIZE_CHANGED = "LOT_SIZE_CHANGED"


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    """The account-independent rules every order is held to (from settings).

    Called a policy, not limits: besides the caps (notional, price band) it holds the
    commission rate and whether short selling is allowed. In this code base "limits"
    are the caps the server puts on a client's requests (query, rate, connection).
    """

    commission_rate: Decimal
    max_order_notional: Decimal
    price_band_percent: Decimal
    market_order_buffer_percent: Decimal
    allow_short_selling: bool


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the account can still commit, in the order's quote currency / symbol."""

    cash: Decimal
    reserved_cash: Decimal
    position: Decimal
    reserved_sell: Decimal

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self.reserved_cash

    @property
    def sellable(self) -> Decimal:
        return self.position - self.reserved_sell


@dataclass(frozen=True, slots=True)
class Assessment:
    reject: RejectReason | None
    # Price at which cash stays reserved while a BUY is open (None for SELL).
    reserve_price: Decimal | None


def reserve_price_for(
    request: OrderRequest, quote: Tick | None, policy: RiskPolicy
) -> Decimal | None:
    """The price at which an open BUY holds cash back: its limit (LIMIT, STOP_LIMIT);
    for a MARKET order the ask, for a STOP order its stop price, plus the market
    buffer (either fills at whatever the market asks once it acts)."""
    if request.side is not OrderSide.BUY:
        return None
    if request.type in LIMIT_TYPES:
        return request.limit_price
    buffer = 1 + policy.market_order_buffer_percent / HUNDRED
    if request.type is OrderType.STOP:
        assert request.stop_price is not None
        return request.stop_price * buffer
    if quote is None:
        return None
    return quote.ask * buffer


def reserved_cash(remaining: Decimal, reserve_price: Decimal, commission_rate: Decimal) -> Decimal:
    """Cash held back for an open BUY: its remaining notional plus commission.

    The matcher's fills are bounded by the same amount
    (:func:`graphql_api.trading.fills.fit_buy_to_reservation`).
    """
    return remaining * reserve_price * (1 + commission_rate)


def assess(
    request: OrderRequest,
    spec: SymbolSpec,
    quote: Tick | None,
    exposure: Exposure,
    policy: RiskPolicy,
    previous_close: Decimal | None = None,
    open_quantity: Decimal | None = None,
    *,
    market_open: bool = True,
) -> Assessment:
    """The verdict on one order.

    ``open_quantity`` is what the order still has to trade, and so reserves: the
    whole quantity for a new order (the default), the unfilled rest for an
    amended one (whose ``exposure`` then leaves out its own current
    reservation). The notional cap applies to the whole order either way.

    The price band centres on the last tick's price; before a symbol's first
    tick it centres on ``previous_close`` (the latest daily close), as
    exchanges band pre-open orders around the previous close. With neither, a
    LIMIT order is refused like a MARKET one (NO_MARKET_PRICE): a band that
    cannot be checked is not skipped.

    ``market_open`` is whether the symbol's session is open now: when it is not,
    the symbol's :class:`~graphql_api.market.sessions.OffSessionOrders` policy
    decides (REFUSE: MARKET_CLOSED; REST: the order is assessed as usual and
    waits, since the matcher fills nothing outside the session).
    """
    reserve = reserve_price_for(request, quote, policy)

    def reject(reason: RejectReason) -> Assessment:
        return Assessment(reason, reserve)

    if not spec.tradable:
        return reject(RejectReason.SYMBOL_NOT_TRADABLE)
    if not market_open and spec.off_session_orders is OffSessionOrders.REFUSE:
        return reject(RejectReason.MARKET_CLOSED)
    if request.type is OrderType.MARKET and quote is None:
        return reject(RejectReason.NO_MARKET_PRICE)
    if request.type in LIMIT_TYPES:
        assert request.limit_price is not None
        reference = quote.last if quote is not None else previous_close
        if reference is None:
            return reject(RejectReason.NO_MARKET_PRICE)
        band = reference * policy.price_band_percent / HUNDRED
        if abs(request.limit_price - reference) > band:
            return reject(RejectReason.PRICE_OUT_OF_BAND)
    price = _notional_price(request, quote)
    if request.quantity * price > policy.max_order_notional:
        return reject(RejectReason.MAX_NOTIONAL_EXCEEDED)
    reserving = request.quantity if open_quantity is None else open_quantity
    if request.side is OrderSide.BUY:
        assert reserve is not None
        if reserved_cash(reserving, reserve, policy.commission_rate) > exposure.buying_power:
            return reject(RejectReason.INSUFFICIENT_BUYING_POWER)
    elif not policy.allow_short_selling and reserving > exposure.sellable:
        return reject(RejectReason.INSUFFICIENT_POSITION)
    return Assessment(None, reserve)


def _notional_price(request: OrderRequest, quote: Tick | None) -> Decimal:
    if request.limit_price is not None:
        return request.limit_price
    if request.stop_price is not None:
        return request.stop_price
    assert quote is not None
    return quote.ask if request.side is OrderSide.BUY else quote.bid
