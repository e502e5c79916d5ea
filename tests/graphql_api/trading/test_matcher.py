"""Paper trading end to end at the service level: risk checks, matching, accounting.

Ticks go through the real ingestor and bus, the matcher runs as it does in the
server (under leader election), and every assertion reads the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from graphql_api.realtime.channels import ORDERS_NEW_CHANNEL
from graphql_api.realtime.events import encode_new_order
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from storage import models
from storage.timeseries import Tick
from tests.conftest import make_settings

RATE = Decimal("0.0003")


@pytest.fixture
async def trading(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, COMMISSION_RATE=str(RATE))
    async with open_services(settings) as services:
        yield services


def tick(symbol: str, last: str, bid: str, ask: str, volume: str = "100000") -> Tick:
    return Tick(
        symbol, datetime.now(UTC), Decimal(last), Decimal(bid), Decimal(ask), Decimal(volume)
    )


async def wait_for(check: Callable[[], object], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():  # type: ignore[misc]
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def order_row(services: Services, order_id: int) -> models.Order:
    async with services.sessions() as session:
        row = await session.get(models.Order, order_id)
    assert row is not None
    return row


async def cash(services: Services, currency: str) -> Decimal:
    async with services.sessions() as session:
        row = await session.get(models.CashBalance, (services.demo_user_id, currency))
    assert row is not None
    return row.amount


async def position(services: Services, symbol: str) -> models.Position | None:
    async with services.sessions() as session:
        return await session.get(models.Position, (services.demo_user_id, symbol))


async def status_becomes(services: Services, order_id: int, status: str) -> models.Order:
    async def check() -> bool:
        return (await order_row(services, order_id)).status == status

    await wait_for(check)
    return await order_row(services, order_id)


async def place(services: Services, **fields: object) -> models.Order:
    request = OrderRequest(**fields)  # type: ignore[arg-type]
    outcome = await services.orders.place_order(services.demo_user_id, request)
    assert outcome.errors == [], outcome.errors
    assert outcome.order is not None
    return outcome.order


async def test_market_buy_fills_on_the_next_tick_at_its_ask(trading: Services) -> None:
    # given a quote, and cash before
    await trading.ingestor.ingest([tick("600519.SH", "1500.00", "1499.99", "1500.01")])
    before = await cash(trading, "CNY")
    # when placing a market buy and a tick arrives
    order = await place(
        trading,
        symbol="600519.SH",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        quantity=Decimal(100),
    )
    await asyncio.sleep(0.2)  # the matcher has the order in its book
    await trading.ingestor.ingest([tick("600519.SH", "1501.00", "1500.50", "1501.20")])
    filled = await status_becomes(trading, order.id, "FILLED")
    assert trading.activity.fills == 1  # what /metrics reports as quantgraph_matcher_fills
    # then it filled at that tick's ask, and cash, position and trade agree to the cent
    assert filled.average_fill_price == Decimal("1501.20")
    notional = Decimal("150120.00")
    commission = Decimal("45.04")  # 150120 * 0.0003 = 45.036 -> 45.04
    assert await cash(trading, "CNY") == before - notional - commission
    held = await position(trading, "600519.SH")
    assert held is not None
    assert (held.quantity, held.cost_basis) == (Decimal(100), notional)
    async with trading.sessions() as session:
        trades = list(await session.scalars(select(models.Trade)))
    assert [(t.quantity, t.price, t.commission) for t in trades] == [
        (Decimal(100), Decimal("1501.20"), commission)
    ]


async def test_limit_orders_rest_until_crossed_and_fill_at_the_better_price(
    trading: Services,
) -> None:
    await trading.ingestor.ingest([tick("BTCUSDT", "95000.00", "94999.00", "95001.00")])
    order = await place(
        trading,
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal("0.5"),
        limit_price=Decimal("94500.00"),
    )
    await asyncio.sleep(0.2)
    # a tick above the limit does not fill
    await trading.ingestor.ingest([tick("BTCUSDT", "94800.00", "94790.00", "94800.00")])
    await asyncio.sleep(0.3)
    assert (await order_row(trading, order.id)).status == "NEW"
    # a tick whose ask is below the limit fills at that ask (better than the limit)
    await trading.ingestor.ingest([tick("BTCUSDT", "94400.00", "94390.00", "94410.00")])
    filled = await status_becomes(trading, order.id, "FILLED")
    assert filled.average_fill_price == Decimal("94410.00")
    # and a limit sell of the position fills when the bid reaches it
    sell = await place(
        trading,
        symbol="BTCUSDT",
        side=OrderSide.SELL,
        type=OrderType.LIMIT,
        quantity=Decimal("0.5"),
        limit_price=Decimal("95500.00"),
    )
    await asyncio.sleep(0.2)
    await trading.ingestor.ingest([tick("BTCUSDT", "95600.00", "95550.00", "95610.00")])
    sold = await status_becomes(trading, sell.id, "FILLED")
    assert sold.average_fill_price == Decimal("95550.00")
    held = await position(trading, "BTCUSDT")
    assert held is not None
    assert held.quantity == 0
    # realised P&L = 0.5 * (95550 - 94410) = 570
    assert held.realized_pnl == Decimal("570.00000")


async def test_ioc_expires_when_the_next_tick_does_not_cross(trading: Services) -> None:
    await trading.ingestor.ingest([tick("ETHUSDT", "3400.00", "3399.00", "3401.00")])
    order = await place(
        trading,
        symbol="ETHUSDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal("1"),
        limit_price=Decimal("3300.00"),
        time_in_force=TimeInForce.IOC,
    )
    await asyncio.sleep(0.2)
    await trading.ingestor.ingest([tick("ETHUSDT", "3402.00", "3401.00", "3403.00")])
    expired = await status_becomes(trading, order.id, "EXPIRED")
    assert expired.filled_quantity == 0


async def test_day_orders_expire_at_the_session_close(trading: Services) -> None:
    order = await place(
        trading,
        symbol="000001.SZ",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(100),
        limit_price=Decimal("11.00"),
        time_in_force=TimeInForce.DAY,
    )
    assert order.expires_at is not None
    assert order.expires_at.hour == 7 and order.expires_at.minute == 0  # 15:00 Beijing
    # when the session close passes (moved into the past here)
    async with trading.sessions() as session:
        row = await session.get(models.Order, order.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        row.version += 1  # a change to an order is a new version, as every real change is
        await session.commit()
    await trading.hub.publish(ORDERS_NEW_CHANNEL, encode_new_order(row))
    # then the matcher expires it
    await status_becomes(trading, order.id, "EXPIRED")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {
                "symbol": "600519.SH",
                "side": OrderSide.BUY,
                "type": OrderType.LIMIT,
                "quantity": Decimal(1000),
                "limit_price": Decimal("1500.00"),
            },
            "INSUFFICIENT_BUYING_POWER",
        ),
        (
            {
                "symbol": "600519.SH",
                "side": OrderSide.SELL,
                "type": OrderType.LIMIT,
                "quantity": Decimal(100),
                "limit_price": Decimal("1500.00"),
            },
            "INSUFFICIENT_POSITION",
        ),
        (
            {
                "symbol": "600519.SH",
                "side": OrderSide.BUY,
                "type": OrderType.LIMIT,
                "quantity": Decimal(100),
                "limit_price": Decimal("1000.00"),
            },
            "PRICE_OUT_OF_BAND",
        ),
        (
            {
                "symbol": "BTCUSDT",
                "side": OrderSide.BUY,
                "type": OrderType.MARKET,
                "quantity": Decimal(1),
            },
            "NO_MARKET_PRICE",
        ),
        (
            {
                "symbol": "600519.SH",
                "side": OrderSide.BUY,
                "type": OrderType.LIMIT,
                "quantity": Decimal(4000),
                "limit_price": Decimal("1500.00"),
            },
            "MAX_NOTIONAL_EXCEEDED",
        ),
    ],
)
async def test_risk_refusals_are_stored_as_rejected_with_a_reason(
    trading: Services, fields: dict[str, object], reason: str
) -> None:
    await trading.ingestor.ingest([tick("600519.SH", "1500.00", "1499.99", "1500.01")])
    outcome = await trading.orders.place_order(
        trading.demo_user_id,
        OrderRequest(**fields),  # type: ignore[arg-type]
    )
    assert outcome.errors == []
    assert outcome.order is not None
    assert (outcome.order.status, outcome.order.reject_reason) == ("REJECTED", reason)


async def test_open_buys_reserve_cash_and_cancel_releases_it(trading: Services) -> None:
    await trading.ingestor.ingest([tick("600519.SH", "1500.00", "1499.99", "1500.01")])
    # 600 shares at 1500 reserve 900,270 CNY of the 1,000,000 (commission included)
    first = await place(
        trading,
        symbol="600519.SH",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(600),
        limit_price=Decimal("1450.00"),
    )
    second = await trading.orders.place_order(
        trading.demo_user_id,
        OrderRequest("600519.SH", OrderSide.BUY, OrderType.LIMIT, Decimal(100), Decimal("1450.00")),
    )
    assert second.order is not None and second.order.reject_reason == "INSUFFICIENT_BUYING_POWER"
    # cancelling the first releases its reservation
    cancel = await trading.orders.cancel_order(trading.demo_user_id, first.id)
    assert cancel.errors == []
    third = await place(
        trading,
        symbol="600519.SH",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(100),
        limit_price=Decimal("1450.00"),
    )
    assert third.status == "NEW"


async def test_partial_fills_are_bounded_by_tick_volume(database_url: str) -> None:
    settings = make_settings(database_url, PARTIAL_FILLS="true")
    async with open_services(settings) as services:
        await services.ingestor.ingest([tick("601398.SH", "6.45", "6.44", "6.46")])
        order = await place(
            services,
            symbol="601398.SH",
            side=OrderSide.BUY,
            type=OrderType.MARKET,
            quantity=Decimal(1000),
        )
        await asyncio.sleep(0.2)
        await services.ingestor.ingest([tick("601398.SH", "6.45", "6.44", "6.46", volume="350")])
        partial = await status_becomes(services, order.id, "PARTIALLY_FILLED")
        assert partial.filled_quantity == Decimal(300)  # whole lots of 100 within 350
        await services.ingestor.ingest([tick("601398.SH", "6.47", "6.46", "6.48", volume="5000")])
        done = await status_becomes(services, order.id, "FILLED")
        # 300 @ 6.46 + 700 @ 6.48 -> 6.474
        assert done.average_fill_price == Decimal("6.474")
