"""One fill moves trade, position, cash and order status together, exact to the cent.

Orders are placed through the real OrderService on the embedded SQLite
database; fills are applied the way the matcher applies them, in a session the
test commits (or does not).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from graphql_api.trading.fills import FillOutcome, apply_fill, position_after
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.timeseries import Tick
from tests.graphql_api.conftest import POLICY, Embedded

D = Decimal
SYMBOL = "600519.SH"  # tick 0.01, lot 100, CNY; the demo user starts with 1,000,000 CNY
START_CASH = D("1000000")


async def place(embedded: Embedded, side: OrderSide, quantity: int, limit: str | None) -> int:
    price = D(limit or "1500.00")
    tick = Tick(SYMBOL, datetime.now(UTC), price, price - D("0.01"), price + D("0.01"), D(100))
    await embedded.store.write_ticks([tick])
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    request = OrderRequest(SYMBOL, side, kind, D(quantity), D(limit) if limit else None)
    outcome = await embedded.orders.place_order(embedded.demo_user_id, request)
    assert outcome.order is not None and outcome.order.status == "NEW", outcome
    return outcome.order.id


async def fill(
    embedded: Embedded, order_id: int, quantity: int, price: str, *, version: int = 0
) -> FillOutcome | None:
    async with embedded.sessions() as session:
        outcome = await apply_fill(
            session,
            order_id=order_id,
            expected_version=version,
            quantity=D(quantity),
            price=D(price),
            tick_time=datetime.now(UTC),
            currency="CNY",
            commission_rate=POLICY.commission_rate,
            allow_short=False,
            lot_size=D(100),
        )
        await session.commit()
        return outcome


async def books(embedded: Embedded) -> tuple[Decimal, models.Position | None, list[models.Trade]]:
    async with embedded.sessions() as session:
        cash = await session.get(models.CashBalance, (embedded.demo_user_id, "CNY"))
        position = await session.get(models.Position, (embedded.demo_user_id, SYMBOL))
        trades = list(await session.scalars(select(models.Trade).order_by(models.Trade.id)))
    assert cash is not None
    return cash.amount, position, trades


async def order(embedded: Embedded, order_id: int) -> models.Order:
    async with embedded.sessions() as session:
        row = await session.get(models.Order, order_id)
    assert row is not None
    return row


async def test_a_buy_fill_writes_trade_position_cash_and_status_to_the_cent(
    embedded: Embedded,
) -> None:
    order_id = await place(embedded, OrderSide.BUY, 100, "1500.00")
    outcome = await fill(embedded, order_id, 100, "1499.50")
    assert outcome is not None and outcome.filled == D(100)
    cash, position, trades = await books(embedded)
    # 100 * 1499.50 = 149,950.00; commission 149,950 * 0.0003 = 44.985 -> 44.99
    assert cash == START_CASH - D("149950.00") - D("44.99")
    assert position is not None
    assert (position.quantity, position.cost_basis, position.realized_pnl) == (
        D(100),
        D("149950.00"),
        D(0),
    )
    [trade] = trades
    assert (trade.order_id, trade.side, trade.quantity, trade.price, trade.commission) == (
        order_id,
        "BUY",
        D(100),
        D("1499.50"),
        D("44.99"),
    )
    filled = await order(embedded, order_id)
    assert (filled.status, filled.filled_quantity, filled.average_fill_price, filled.version) == (
        "FILLED",
        D(100),
        D("1499.50"),
        1,
    )


async def test_a_fill_not_committed_leaves_no_trace(embedded: Embedded) -> None:
    order_id = await place(embedded, OrderSide.BUY, 100, "1500.00")
    async with embedded.sessions() as session:
        outcome = await apply_fill(
            session,
            order_id=order_id,
            expected_version=0,
            quantity=D(100),
            price=D("1500.00"),
            tick_time=datetime.now(UTC),
            currency="CNY",
            commission_rate=POLICY.commission_rate,
            allow_short=False,
            lot_size=D(100),
        )
        assert outcome is not None and outcome.filled == D(100)
        await session.rollback()  # e.g. the matcher lost its lease before committing
    cash, position, trades = await books(embedded)
    assert (cash, position, trades) == (START_CASH, None, [])
    untouched = await order(embedded, order_id)
    assert (untouched.status, untouched.filled_quantity, untouched.version) == ("NEW", D(0), 0)


async def test_a_fill_for_a_version_the_order_has_left_writes_nothing(embedded: Embedded) -> None:
    order_id = await place(embedded, OrderSide.BUY, 200, "1500.00")
    assert await fill(embedded, order_id, 100, "1500.00") is not None  # version 0 -> 1
    # a second fill computed from version 0 (a previous leader's) is fenced off
    assert await fill(embedded, order_id, 100, "1500.00", version=0) is None
    _, position, trades = await books(embedded)
    assert len(trades) == 1
    assert position is not None and position.quantity == D(100)
    # and a canceled order takes no fill at all
    await embedded.orders.cancel_order(embedded.demo_user_id, order_id)
    assert await fill(embedded, order_id, 100, "1500.00", version=2) is None


async def test_partial_fills_average_their_prices_exactly(embedded: Embedded) -> None:
    order_id = await place(embedded, OrderSide.BUY, 300, "1500.00")
    first = await fill(embedded, order_id, 100, "1500.00")
    assert first is not None and first.order.status == "PARTIALLY_FILLED"
    await fill(embedded, order_id, 100, "1499.99", version=1)
    last = await fill(embedded, order_id, 500, "1499.99", version=2)  # only 100 remain
    assert last is not None and last.filled == D(100)
    done = await order(embedded, order_id)
    # (150000.00 + 149999.00 + 149999.00) / 300 = 1499.9933333333...
    assert done.status == "FILLED" and done.filled_quantity == D(300)
    assert done.average_fill_price == D("1499.9933333333")
    cash, position, trades = await books(embedded)
    commissions = D("45.00") * 3  # 45.00, then 44.9997 -> 45.00 twice
    assert [t.commission for t in trades] == [D("45.00"), D("45.00"), D("45.00")]
    assert cash == START_CASH - D("449998.00") - commissions
    assert position is not None and position.cost_basis == D("449998.00")


async def test_a_sell_realises_its_profit_against_the_cost_basis(embedded: Embedded) -> None:
    buy_id = await place(embedded, OrderSide.BUY, 100, "1500.00")
    await fill(embedded, buy_id, 100, "1500.00")  # cost 150,000.00, commission 45.00
    sell_id = await place(embedded, OrderSide.SELL, 100, "1600.00")
    outcome = await fill(embedded, sell_id, 100, "1600.00")
    assert outcome is not None and outcome.trade is not None
    assert outcome.trade.realized_pnl == D("10000.00")
    cash, position, _ = await books(embedded)
    # in 160,000.00 less commission 48.00; out 150,045.00 before
    assert cash == START_CASH - D("150045.00") + D("160000.00") - D("48.00")
    assert position is not None
    assert (position.quantity, position.cost_basis, position.realized_pnl) == (
        D(0),
        D(0),
        D("10000.00"),
    )


async def test_a_sell_whose_position_is_gone_is_canceled_without_a_trade(
    embedded: Embedded,
) -> None:
    buy_id = await place(embedded, OrderSide.BUY, 100, "1500.00")
    await fill(embedded, buy_id, 100, "1500.00")
    sell_id = await place(embedded, OrderSide.SELL, 100, "1500.00")
    async with embedded.sessions() as session:  # the shares left by another path
        held = await session.get(models.Position, (embedded.demo_user_id, SYMBOL))
        assert held is not None
        held.quantity = D(0)
        await session.commit()
    cash_before, _, _ = await books(embedded)
    outcome = await fill(embedded, sell_id, 100, "1500.00")
    assert outcome is not None and outcome.trade is None and outcome.filled == 0
    closed = await order(embedded, sell_id)
    assert (closed.status, closed.reject_reason) == ("CANCELED", "INSUFFICIENT_POSITION")
    cash, _, trades = await books(embedded)
    assert cash == cash_before and len(trades) == 1


async def test_a_market_buy_priced_past_its_reservation_is_canceled_unfilled(
    embedded: Embedded,
) -> None:
    # ask 1500.01 reserves 100 * 1575.0105 * 1.0003 = 157,548.30; at 1700.00 a lot of
    # 100 costs 170,051.00: not one lot fits, and nothing is written
    order_id = await place(embedded, OrderSide.BUY, 100, None)
    outcome = await fill(embedded, order_id, 100, "1700.00")
    assert outcome is not None and outcome.trade is None
    closed = await order(embedded, order_id)
    assert (closed.status, closed.reject_reason) == ("CANCELED", "INSUFFICIENT_FUNDS_AT_FILL")
    assert await books(embedded) == (START_CASH, None, [])


def test_a_partial_reduction_removes_basis_pro_rata_rounded_to_the_cent() -> None:
    # 300 held for 1000.00; selling 100 at 5 removes 333.33 (not 333.333...)
    change = position_after(D(300), D("1000.00"), OrderSide.SELL, D(100), D(5), "CNY")
    assert (change.quantity, change.cost_basis, change.realized) == (
        D(200),
        D("666.67"),
        D("166.67"),
    )
    # conserved: what was paid = what remains + what was realised back out of the sale
    assert change.cost_basis + (D(500) - change.realized) == D("1000.00")


def test_a_sell_through_zero_closes_the_long_then_opens_a_short() -> None:
    change = position_after(D(100), D("1000.00"), OrderSide.SELL, D(300), D(12), "CNY")
    assert (change.quantity, change.cost_basis, change.realized) == (
        D(-200),
        D(-2400),
        D(200),
    )


def test_adding_to_a_position_realises_nothing() -> None:
    change = position_after(D(-100), D(-1000), OrderSide.SELL, D(50), D(11), "CNY")
    assert (change.quantity, change.cost_basis, change.realized) == (D(-150), D(-1550), D(0))
