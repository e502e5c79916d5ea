"""The matcher's rules on time and money, one tick at a time.

Which ticks may fill an order (none from before it existed, no late ones),
what a BUY may spend (never more than it reserved), and what tick volume a
fill consumes. Ticks are handed to a matcher of the test's own (the server's
is switched off) so each step is deterministic; orders, cancels and every
assertion go through the real services and database, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update

from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from storage import models
from storage.repositories import accounts as account_repo
from storage.timeseries import Tick
from tests.conftest import make_settings
from tests.graphql_api.trading.test_matcher import order_row, place, status_becomes, tick

RATE = Decimal("0.0003")


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, COMMISSION_RATE=str(RATE), MATCHER_ENABLED="false")
    async with open_services(settings) as running:
        yield running


def matcher_for(services: Services, **options: object) -> PaperMatcher:
    return PaperMatcher(
        services.sessions,
        services.hub,
        services.catalog,
        services.orders,
        services.orders.risk_policy,
        resync_every=3600,
        **options,  # type: ignore[arg-type]
    )


def at(time: datetime, symbol: str, price: str, volume: str = "100000") -> Tick:
    value = Decimal(price)
    return Tick(symbol, time, value, value, value, Decimal(volume))


async def buying_power(services: Services, currency: str = "CNY") -> Decimal:
    async with services.sessions() as session:
        balance = await account_repo.balance(session, services.demo_user_id, currency)
        reserved = await account_repo.reserved_for_buys(
            session, services.demo_user_id, currency, RATE
        )
    assert balance is not None
    return balance.amount - reserved


async def set_cash(services: Services, currency: str, amount: Decimal) -> None:
    async with services.sessions() as session:
        await session.execute(
            update(models.CashBalance)
            .where(
                models.CashBalance.user_id == services.demo_user_id,
                models.CashBalance.currency == currency,
            )
            .values(amount=amount)
        )
        await session.commit()


# --- which ticks may fill an order ------------------------------------------


async def test_a_back_dated_tick_never_fills_a_resting_order(database_url: str) -> None:
    # given the server's own matcher, and a resting limit buy
    settings = make_settings(database_url)
    async with open_services(settings) as services:
        await services.ingestor.ingest([tick("BTCUSDT", "95000.00", "94999.00", "95001.00")])
        order = await place(
            services,
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.5"),
            limit_price=Decimal("94500.00"),
        )
        await asyncio.sleep(0.2)  # the matcher has the order in its book
        # when a feed sends a tick stamped two days ago, far below the limit
        two_days_ago = datetime.now(UTC) - timedelta(days=2)
        await services.ingestor.ingest([at(two_days_ago, "BTCUSDT", "90000.00")])
        # then it is stored as history but fills nothing
        stored = await services.timeseries.ticks("BTCUSDT", two_days_ago, None, 5)
        assert [t.last for t in stored][:1] == [Decimal("90000.00")]
        await asyncio.sleep(0.3)
        assert (await order_row(services, order.id)).status == "NEW"
        # and a current tick that crosses fills it at its own price
        await services.ingestor.ingest([tick("BTCUSDT", "94400.00", "94390.00", "94410.00")])
        filled = await status_becomes(services, order.id, "FILLED")
        assert filled.average_fill_price == Decimal("94410.00")


async def test_a_tick_stamped_before_the_order_was_created_does_not_fill_it(
    services: Services,
) -> None:
    matcher = matcher_for(services)
    await services.ingestor.ingest([tick("ETHUSDT", "3400.00", "3400.00", "3400.00")])
    market = await place(
        services, symbol="ETHUSDT", side=OrderSide.BUY, type=OrderType.MARKET, quantity=Decimal(1)
    )
    ioc = await place(
        services,
        symbol="ETHUSDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=Decimal("3300.00"),
        time_in_force=TimeInForce.IOC,
    )
    await matcher.resync()
    # a tick a millisecond older than the orders (the feed stamped it before they existed)
    before = min(market.created_at, ioc.created_at) - timedelta(milliseconds=1)
    await matcher.on_tick(at(before, "ETHUSDT", "3250.00"))
    # fills neither, and is not the IOC's one tick either
    assert (await order_row(services, market.id)).status == "NEW"
    assert (await order_row(services, ioc.id)).status == "NEW"
    # the first tick after them does
    await matcher.on_tick(at(datetime.now(UTC), "ETHUSDT", "3290.00"))
    assert (await order_row(services, market.id)).average_fill_price == Decimal("3290.00")
    assert (await order_row(services, ioc.id)).status == "FILLED"


async def test_the_clock_tolerance_admits_ticks_from_a_lagging_feed(services: Services) -> None:
    matcher = matcher_for(services, clock_tolerance=timedelta(milliseconds=500))
    await services.ingestor.ingest([tick("ETHUSDT", "3400.00", "3400.00", "3400.00")])
    order = await place(
        services, symbol="ETHUSDT", side=OrderSide.BUY, type=OrderType.MARKET, quantity=Decimal(1)
    )
    await matcher.resync()
    # one second too early is still refused, 200 ms (within the tolerance) fills
    await matcher.on_tick(at(order.created_at - timedelta(seconds=1), "ETHUSDT", "3390.00"))
    assert (await order_row(services, order.id)).status == "NEW"
    await matcher.on_tick(at(order.created_at - timedelta(milliseconds=200), "ETHUSDT", "3395.00"))
    assert (await order_row(services, order.id)).average_fill_price == Decimal("3395.00")


async def test_late_ticks_are_history_and_fill_nothing(services: Services) -> None:
    matcher = matcher_for(services, max_tick_lag=timedelta(seconds=5))
    await services.ingestor.ingest([tick("SOLUSDT", "150.00", "150.00", "150.00")])
    order = await place(
        services,
        symbol="SOLUSDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=Decimal("145.00"),
        time_in_force=TimeInForce.IOC,
    )
    await matcher.resync()
    now = datetime.now(UTC)
    # a tick newer than the order that does not cross: the latest tick is now `now`
    await matcher.on_tick(at(now + timedelta(seconds=1), "SOLUSDT", "151.00"))
    # (the IOC had its one tick; place a resting order for the rest of the test)
    assert (await order_row(services, order.id)).status == "EXPIRED"
    resting = await place(
        services,
        symbol="SOLUSDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=Decimal("145.00"),
    )
    await matcher.resync()
    # older than the symbol's latest tick (though after the order): late
    reordered = resting.created_at + timedelta(microseconds=1)
    assert reordered < now + timedelta(seconds=1)
    await matcher.on_tick(at(reordered, "SOLUSDT", "140.00"))
    assert (await order_row(services, resting.id)).status == "NEW"
    assert matcher.watermark.late_ticks == 1
    # further behind the clock than the lag: late too (a matcher that has seen no tick yet)
    fresh = matcher_for(services, max_tick_lag=timedelta(seconds=5))
    await fresh.resync()
    await fresh.on_tick(at(datetime.now(UTC) - timedelta(seconds=6), "SOLUSDT", "140.00"))
    assert (await order_row(services, resting.id)).status == "NEW"
    assert fresh.watermark.late_ticks == 1


async def test_a_day_order_is_not_filled_by_a_tick_after_its_session_close(
    services: Services,
) -> None:
    matcher = matcher_for(services)
    await services.ingestor.ingest([tick("000001.SZ", "11.00", "11.00", "11.00")])
    order = await place(
        services,
        symbol="000001.SZ",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(100),
        limit_price=Decimal("11.00"),
        time_in_force=TimeInForce.DAY,
    )
    # the session closed a moment after the order was placed (housekeeping has not run)
    async with services.sessions() as session:
        await session.execute(
            update(models.Order)
            .where(models.Order.id == order.id)
            .values(expires_at=order.created_at + timedelta(milliseconds=1))
        )
        await session.commit()
    await matcher.resync()
    await matcher.on_tick(at(datetime.now(UTC), "000001.SZ", "10.50"))
    expired = await order_row(services, order.id)
    assert (expired.status, expired.filled_quantity) == ("EXPIRED", Decimal(0))


# --- what a BUY may spend ---------------------------------------------------


async def test_a_market_buy_never_spends_cash_reserved_for_other_orders(
    services: Services,
) -> None:
    matcher = matcher_for(services)
    await services.ingestor.ingest([tick("600519.SH", "1500.00", "1500.00", "1500.00")])
    # a limit buy reserves 200 * 1450 * 1.0003 = 362,608.75
    limit = await place(
        services,
        symbol="600519.SH",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(200),
        limit_price=Decimal("1450.00"),
    )
    # a market buy reserves 400 * 1500 * 1.05 * 1.0003 = 630,189.00
    market = await place(
        services,
        symbol="600519.SH",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        quantity=Decimal(400),
    )
    assert (limit.status, market.status) == ("NEW", "NEW")
    await matcher.resync()
    # when the price jumps 20% before the market buy fills
    await matcher.on_tick(at(datetime.now(UTC), "600519.SH", "1800.00"))
    # then it fills what its reservation pays for (300 of 400, whole lots), the rest
    # is canceled, and buying power has not gone below zero
    cut = await order_row(services, market.id)
    assert (cut.status, cut.filled_quantity, cut.reject_reason) == (
        "CANCELED",
        Decimal(300),
        "INSUFFICIENT_FUNDS_AT_FILL",
    )
    assert await buying_power(services) >= 0
    # and the limit order's reservation is intact: it fills when crossed
    await matcher.on_tick(at(datetime.now(UTC), "600519.SH", "1440.00"))
    assert (await order_row(services, limit.id)).status == "FILLED"
    assert await buying_power(services) >= 0


async def test_a_fill_the_reservation_cannot_pay_for_at_all_writes_nothing(
    services: Services,
) -> None:
    matcher = matcher_for(services)
    await services.ingestor.ingest([tick("600519.SH", "1500.00", "1500.00", "1500.00")])
    market = await place(
        services,
        symbol="600519.SH",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        quantity=Decimal(100),
    )
    await matcher.resync()
    # 100 shares reserve 157,547; at 1600 one lot costs 160,048: not even one lot
    await matcher.on_tick(at(datetime.now(UTC), "600519.SH", "1600.00"))
    refused = await order_row(services, market.id)
    assert (refused.status, refused.filled_quantity, refused.reject_reason) == (
        "CANCELED",
        Decimal(0),
        "INSUFFICIENT_FUNDS_AT_FILL",
    )
    async with services.sessions() as session:
        assert list(await session.scalars(select(models.Trade))) == []


async def test_commission_rounding_never_takes_another_orders_reservation(
    services: Services,
) -> None:
    matcher = matcher_for(services)
    await services.ingestor.ingest([tick("000001.SZ", "10.20", "10.20", "10.20")])
    # cash exactly covers two limit buys of 100 at 10.20 (1,020.306 each: 0.306 commission)
    await set_cash(services, "CNY", Decimal("2040.612"))
    first, second = [
        await place(
            services,
            symbol="000001.SZ",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal(100),
            limit_price=Decimal("10.20"),
        )
        for _ in range(2)
    ]
    assert (first.status, second.status) == ("NEW", "NEW")
    assert await buying_power(services) == 0
    await matcher.resync()
    # when both fill exactly at their limit, commission 0.306 cannot round up to 0.31
    await matcher.on_tick(at(datetime.now(UTC), "000001.SZ", "10.20"))
    assert [(await order_row(services, o.id)).status for o in (first, second)] == [
        "FILLED",
        "FILLED",
    ]
    assert await buying_power(services) >= 0


# --- what tick volume a fill consumes ---------------------------------------


async def test_a_canceled_order_consumes_no_tick_volume(database_url: str) -> None:
    settings = make_settings(database_url, MATCHER_ENABLED="false", PARTIAL_FILLS="true")
    async with open_services(settings) as services:
        matcher = matcher_for(services, partial_fills=True)
        await services.ingestor.ingest([tick("601398.SH", "6.45", "6.44", "6.46")])
        first, second = [
            await place(
                services,
                symbol="601398.SH",
                side=OrderSide.BUY,
                type=OrderType.MARKET,
                quantity=Decimal(1000),
            )
            for _ in range(2)
        ]
        await matcher.resync()
        # the first is canceled; the matcher learns it only when its fill is fenced off
        assert (await services.orders.cancel_order(services.demo_user_id, first.id)).errors == []
        await matcher.on_tick(at(datetime.now(UTC), "601398.SH", "6.46", volume="1000"))
        # so the whole volume goes to the second
        filled = await order_row(services, second.id)
        assert (filled.status, filled.filled_quantity) == ("FILLED", Decimal(1000))


# --- the price band before a symbol's first tick ----------------------------


async def test_a_limit_order_before_the_first_tick_is_banded_around_the_last_close(
    services: Services,
) -> None:
    async with services.sessions() as session:
        close = await session.scalar(
            select(models.DailyBar.close)
            .where(models.DailyBar.symbol_code == "000001.SZ")
            .order_by(models.DailyBar.day.desc())
            .limit(1)
        )
    assert close is not None
    assert await services.timeseries.latest_ticks(["000001.SZ"]) == {}

    async def verdict(symbol: str, price: Decimal) -> tuple[str, str | None]:
        outcome = await services.orders.place_order(
            services.demo_user_id,
            OrderRequest(symbol, OrderSide.BUY, OrderType.LIMIT, Decimal(100), price),
        )
        assert outcome.order is not None, outcome.errors
        return outcome.order.status, outcome.order.reject_reason

    # far from the previous close: out of the band, as with a live price
    assert await verdict("000001.SZ", close * 2) == ("REJECTED", "PRICE_OUT_OF_BAND")
    assert await verdict("000001.SZ", close) == ("NEW", None)
    # no tick and no daily history: there is no price to band around
    async with services.sessions() as session:
        await session.execute(
            delete(models.DailyBar).where(models.DailyBar.symbol_code == "601398.SH")
        )
        await session.commit()
    assert await verdict("601398.SH", Decimal("6.45")) == ("REJECTED", "NO_MARKET_PRICE")
