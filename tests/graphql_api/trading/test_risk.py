"""Pre-trade risk: every refusal reason from the pure functions, over a hand-made snapshot.

Each refusal is shown next to the order one step on the other side of the line,
so a check that is off by one cent or one share fails here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from graphql_api.market.sessions import OffSessionOrders
from graphql_api.market.symbols import SymbolSpec
from graphql_api.server.demo_data import A_SHARE_DEMO_SESSION
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from graphql_api.trading.risk import (
    Exposure,
    RejectReason,
    RiskPolicy,
    assess,
    reserve_price_for,
    reserved_cash,
)
from storage.timeseries import Tick

D = Decimal
SPEC = SymbolSpec(
    "600519.SH",
    "SSE",
    "CNY",
    D("0.01"),
    D("100"),
    True,
    A_SHARE_DEMO_SESSION,
    OffSessionOrders.REFUSE,
)
QUOTE = Tick("600519.SH", datetime.now(UTC), D("1500.00"), D("1499.99"), D("1500.01"), D(500))
POLICY = RiskPolicy(
    commission_rate=D("0.0003"),
    max_order_notional=D("5000000"),
    price_band_percent=D("10"),
    market_order_buffer_percent=D("5"),
    allow_short_selling=False,
)
RICH = Exposure(cash=D("100000000"), reserved_cash=D(0), position=D(10_000), reserved_sell=D(0))


def buy(quantity: int | str, limit: str | None = None) -> OrderRequest:
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    return OrderRequest("600519.SH", OrderSide.BUY, kind, D(quantity), D(limit) if limit else None)


def sell(quantity: int | str, limit: str | None = None) -> OrderRequest:
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    return OrderRequest("600519.SH", OrderSide.SELL, kind, D(quantity), D(limit) if limit else None)


def refusal(
    request: OrderRequest,
    *,
    spec: SymbolSpec = SPEC,
    quote: Tick | None = QUOTE,
    exposure: Exposure = RICH,
    policy: RiskPolicy = POLICY,
    previous_close: Decimal | None = None,
) -> RejectReason | None:
    return assess(request, spec, quote, exposure, policy, previous_close).reject


def test_a_symbol_that_is_not_tradable_is_refused_whatever_the_order() -> None:
    halted = replace(SPEC, tradable=False)
    assert refusal(buy(100, "1500.00"), spec=halted) is RejectReason.SYMBOL_NOT_TRADABLE
    assert refusal(sell(100), spec=halted) is RejectReason.SYMBOL_NOT_TRADABLE
    assert refusal(buy(100, "1500.00")) is None


def test_a_market_order_needs_a_quote() -> None:
    verdict = assess(buy(100), SPEC, None, RICH, POLICY)
    assert verdict.reject is RejectReason.NO_MARKET_PRICE
    assert verdict.reserve_price is None
    # a daily close does not price a MARKET order
    assert refusal(sell(100), quote=None, previous_close=D("1500.00")) is (
        RejectReason.NO_MARKET_PRICE
    )


def test_a_limit_order_without_quote_or_close_cannot_be_banded_and_is_refused() -> None:
    assert refusal(buy(100, "1500.00"), quote=None) is RejectReason.NO_MARKET_PRICE


def test_the_band_is_ten_percent_either_side_of_the_last_price_inclusive() -> None:
    # last 1500.00: the band is 1350.00 .. 1650.00
    assert refusal(buy(100, "1650.00")) is None
    assert refusal(buy(100, "1650.01")) is RejectReason.PRICE_OUT_OF_BAND
    assert refusal(sell(100, "1350.00")) is None
    assert refusal(sell(100, "1349.99")) is RejectReason.PRICE_OUT_OF_BAND


def test_before_the_first_tick_the_band_centres_on_the_previous_close() -> None:
    # previous close 1000.00: the band is 900.00 .. 1100.00
    assert refusal(buy(100, "1100.00"), quote=None, previous_close=D("1000.00")) is None
    assert refusal(buy(100, "1100.01"), quote=None, previous_close=D("1000.00")) is (
        RejectReason.PRICE_OUT_OF_BAND
    )
    # a tick, once there is one, wins over the close
    assert refusal(buy(100, "1100.00"), previous_close=D("1500.00")) is (
        RejectReason.PRICE_OUT_OF_BAND
    )


def test_the_notional_cap_prices_a_limit_at_its_limit() -> None:
    # 3300 * 1515.15 = 4,999,995 <= 5,000,000 < 3400 * 1500 = 5,100,000
    assert refusal(buy(3300, "1515.15")) is None
    assert refusal(buy(3400, "1500.00")) is RejectReason.MAX_NOTIONAL_EXCEEDED


def test_the_notional_cap_prices_a_market_buy_at_the_ask_and_a_sell_at_the_bid() -> None:
    capped = replace(POLICY, max_order_notional=D("150000.00"))
    # 100 * ask 1500.01 = 150,001 is over; 100 * bid 1499.99 = 149,999 is under
    assert refusal(buy(100), policy=capped) is RejectReason.MAX_NOTIONAL_EXCEEDED
    assert refusal(sell(100), policy=capped) is None


def test_a_buy_needs_its_notional_plus_commission_in_unreserved_cash() -> None:
    # 100 * 1500.00 * 1.0003 = 150,045.00
    needed = D("150045.00")
    exactly = Exposure(cash=needed, reserved_cash=D(0), position=D(0), reserved_sell=D(0))
    assert refusal(buy(100, "1500.00"), exposure=exactly) is None
    short_a_cent = replace(exactly, cash=needed - D("0.01"))
    assert refusal(buy(100, "1500.00"), exposure=short_a_cent) is (
        RejectReason.INSUFFICIENT_BUYING_POWER
    )
    # cash other open buys hold back is not buying power
    held_back = replace(exactly, cash=D("200000.00"), reserved_cash=D("49955.01"))
    assert held_back.buying_power == needed - D("0.01")
    assert refusal(buy(100, "1500.00"), exposure=held_back) is (
        RejectReason.INSUFFICIENT_BUYING_POWER
    )


def test_a_market_buy_reserves_the_ask_plus_the_buffer() -> None:
    verdict = assess(buy(100), SPEC, QUOTE, RICH, POLICY)
    assert verdict.reserve_price == D("1575.0105")  # 1500.01 * 1.05
    # 100 * 1575.0105 * 1.0003 = 157,548.300315: more than the ask alone needs (150,046.00)
    assert reserved_cash(D(100), D("1575.0105"), POLICY.commission_rate) == D("157548.300315")
    flat = Exposure(cash=D("157548.30"), reserved_cash=D(0), position=D(0), reserved_sell=D(0))
    assert refusal(buy(100), exposure=flat) is RejectReason.INSUFFICIENT_BUYING_POWER
    assert refusal(buy(100), exposure=replace(flat, cash=D("157548.31"))) is None


def test_a_sell_may_not_exceed_the_position_others_have_not_reserved() -> None:
    # 300 held, 200 promised to other open sells: 100 can still be sold
    holding = Exposure(cash=D(0), reserved_cash=D(0), position=D(300), reserved_sell=D(200))
    assert holding.sellable == D(100)
    assert refusal(sell(100), exposure=holding) is None
    assert refusal(sell(200), exposure=holding) is RejectReason.INSUFFICIENT_POSITION


def test_short_selling_when_allowed_needs_no_position() -> None:
    flat = Exposure(cash=D(0), reserved_cash=D(0), position=D(0), reserved_sell=D(0))
    assert refusal(sell(100), exposure=flat) is RejectReason.INSUFFICIENT_POSITION
    shorting = replace(POLICY, allow_short_selling=True)
    assert refusal(sell(100), exposure=flat, policy=shorting) is None


def test_reserve_prices_a_limit_buy_at_its_limit_and_a_sell_not_at_all() -> None:
    assert reserve_price_for(buy(100, "1499.00"), QUOTE, POLICY) == D("1499.00")
    assert reserve_price_for(buy(100), None, POLICY) is None
    assert reserve_price_for(sell(100, "1499.00"), QUOTE, POLICY) is None
    assert assess(sell(100), SPEC, QUOTE, RICH, POLICY).reserve_price is None


def test_reserved_cash_is_exact_decimal_arithmetic() -> None:
    assert reserved_cash(D(100), D("1500.00"), D("0.0003")) == D("150045")
    assert reserved_cash(D("0.00001"), D("95000.01"), D("0.001")) == D("0.9509501001")
