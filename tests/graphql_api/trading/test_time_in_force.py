"""FOK and GTD: fill completely at once or not at all, and rest until an explicit time.

Orders go through the real OrderService (SQLite and PostgreSQL); ticks are
handed to a matcher of the test's own (the server's is switched off), so each
step is deterministic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from graphql_api.platform.errors import ErrorCode
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from graphql_api.trading.orders import OrderOutcome
from storage import models
from tests.conftest import make_settings
from tests.graphql_api.trading.test_matcher import order_row, tick

RATE = Decimal("0.0003")
D = Decimal
MOUTAI = "600519.SH"  # tick 0.01, lot 100, CNY


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, COMMISSION_RATE=str(RATE), MATCHER_ENABLED="false")
    async with open_services(settings) as running:
        await running.ingestor.ingest([tick(MOUTAI, "1500.00", "1499.99", "1500.01")])
        yield running


def matcher_for(services: Services, *, partial_fills: bool = True) -> PaperMatcher:
    return PaperMatcher(
        services.sessions,
        services.hub,
        services.catalog,
        services.orders,
        services.orders.risk_policy,
        partial_fills=partial_fills,
        resync_every=3600,
    )


async def submit(
    services: Services,
    tif: TimeInForce,
    quantity: str = "300",
    price: str | None = "1500.00",
    **extra: Any,
) -> OrderOutcome:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return await services.orders.place_order(
        services.demo_user_id,
        OrderRequest(
            MOUTAI,
            OrderSide.BUY,
            kind,
            D(quantity),
            None if price is None else D(price),
            tif,
            **extra,
        ),
    )


async def place(services: Services, tif: TimeInForce, **fields: Any) -> models.Order:
    outcome = await submit(services, tif, **fields)
    assert outcome.errors == [] and outcome.order is not None
    assert outcome.order.status == "NEW", outcome.order.reject_reason
    return outcome.order


async def trades_of(services: Services, order_id: int) -> int:
    async with services.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(models.Trade).where(models.Trade.order_id == order_id)
        )
    return int(count or 0)


# --- FOK -------------------------------------------------------------------------------


async def test_a_fok_order_fills_completely_on_a_tick_that_can_fill_it(services: Services) -> None:
    fok = await place(services, TimeInForce.FOK)
    matcher = matcher_for(services)
    await matcher.resync()
    await matcher.on_tick(tick(MOUTAI, "1499.00", "1498.99", "1499.00", volume="300"))
    row = await order_row(services, fok.id)
    assert (row.status, row.filled_quantity, row.average_fill_price) == (
        "FILLED",
        D(300),
        D("1499.00"),
    )


async def test_a_fok_order_a_tick_cannot_fill_entirely_expires_unfilled_and_leaves_the_volume(
    services: Services,
) -> None:
    # given a FOK buy of 300 ahead of a GTC buy of 200 at the same price
    fok = await place(services, TimeInForce.FOK)
    gtc = await place(services, TimeInForce.GTC, quantity="200")
    matcher = matcher_for(services)
    await matcher.resync()
    # when a crossing tick has volume for only 200
    await matcher.on_tick(tick(MOUTAI, "1499.00", "1498.99", "1499.00", volume="200"))
    # then the FOK is killed whole, with no trade, and the GTC gets the volume
    killed = await order_row(services, fok.id)
    assert (killed.status, killed.filled_quantity) == ("EXPIRED", D(0))
    assert await trades_of(services, fok.id) == 0
    assert (await order_row(services, gtc.id)).status == "FILLED"


async def test_a_fok_order_gets_one_tick_even_if_it_does_not_cross(services: Services) -> None:
    fok = await place(services, TimeInForce.FOK, price="1490.00")
    matcher = matcher_for(services, partial_fills=False)
    await matcher.resync()
    await matcher.on_tick(tick(MOUTAI, "1500.00", "1499.99", "1500.01"))
    assert (await order_row(services, fok.id)).status == "EXPIRED"
    # a later crossing tick finds nothing to fill
    await matcher.on_tick(tick(MOUTAI, "1480.00", "1479.99", "1480.00"))
    assert (await order_row(services, fok.id)).filled_quantity == 0


async def test_a_fok_market_buy_its_reservation_cannot_pay_for_is_not_filled_in_part(
    services: Services,
) -> None:
    # given a FOK market buy reserved at the ask plus the 5 % buffer (1575.01)
    fok = await place(services, TimeInForce.FOK, price=None)
    matcher = matcher_for(services, partial_fills=False)
    await matcher.resync()
    # when the price has run 10 % past it: the reservation pays for some lots, not all
    await matcher.on_tick(tick(MOUTAI, "1650.00", "1649.99", "1650.00"))
    # then nothing is filled (an IOC or GTC market buy would fill what it can)
    row = await order_row(services, fok.id)
    assert (row.status, row.reject_reason, row.filled_quantity) == (
        "CANCELED",
        "INSUFFICIENT_FUNDS_AT_FILL",
        D(0),
    )
    assert await trades_of(services, fok.id) == 0


# --- GTD -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tif", "expires_at", "code"),
    [
        (TimeInForce.GTD, None, ErrorCode.REQUIRED),
        (TimeInForce.GTD, datetime.now(UTC) - timedelta(seconds=1), ErrorCode.OUT_OF_RANGE),
        (TimeInForce.GTD, datetime(2099, 1, 1, 7, 0), ErrorCode.INVALID),  # no offset
        (TimeInForce.GTC, datetime(2099, 1, 1, 7, 0, tzinfo=UTC), ErrorCode.NOT_ALLOWED),
        (TimeInForce.DAY, datetime(2099, 1, 1, 7, 0, tzinfo=UTC), ErrorCode.NOT_ALLOWED),
    ],
)
async def test_a_bad_expiry_is_a_typed_error_and_stores_nothing(
    services: Services, tif: TimeInForce, expires_at: datetime | None, code: ErrorCode
) -> None:
    outcome = await submit(services, tif, expires_at=expires_at)
    assert outcome.order is None
    assert [(e.field, e.code) for e in outcome.errors] == [("expiresAt", code)]
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(models.Order)) == 0


async def test_a_gtd_order_rests_until_its_expiry_in_utc_then_expires(services: Services) -> None:
    # given a GTD order whose expiry is given in Beijing time
    beijing = timezone(timedelta(hours=8))
    expiry = (datetime.now(UTC) + timedelta(hours=2)).astimezone(beijing)
    gtd = await place(services, TimeInForce.GTD, price="1490.00", expires_at=expiry)
    assert gtd.expires_at == expiry  # the same instant, kept in UTC
    assert gtd.expires_at is not None and gtd.expires_at.utcoffset() == timedelta(0)
    matcher = matcher_for(services)
    await matcher.resync()
    # when the expiry pass runs before it: nothing happens
    await matcher.expire_day_orders(expiry - timedelta(seconds=1))
    assert (await order_row(services, gtd.id)).status == "NEW"
    # and at it: it expires, from the book's expiry heap
    await matcher.expire_day_orders(expiry)
    assert (await order_row(services, gtd.id)).status == "EXPIRED"


async def test_a_gtd_order_can_be_amended_like_any_resting_limit_order(
    services: Services,
) -> None:
    gtd = await place(services, TimeInForce.GTD, expires_at=datetime.now(UTC) + timedelta(days=3))
    amended = await services.orders.amend_order(
        services.demo_user_id, gtd.id, limit_price=D("1495.00")
    )
    assert amended.errors == [] and amended.order is not None
    assert amended.order.expires_at == gtd.expires_at
    fok = await place(services, TimeInForce.FOK)
    refused = await services.orders.amend_order(services.demo_user_id, fok.id, quantity=D(100))
    assert [(e.field, e.code) for e in refused.errors] == [("id", ErrorCode.NOT_AMENDABLE)]


async def test_the_same_gtd_request_replays_and_another_expiry_is_a_conflict(
    services: Services,
) -> None:
    expiry = datetime.now(UTC) + timedelta(days=1)
    first = await place(services, TimeInForce.GTD, expires_at=expiry, client_order_id="gtd-1")
    again = await submit(services, TimeInForce.GTD, expires_at=expiry, client_order_id="gtd-1")
    assert again.order is not None and again.order.id == first.id
    other = await submit(
        services,
        TimeInForce.GTD,
        expires_at=expiry + timedelta(hours=1),
        client_order_id="gtd-1",
    )
    assert [(e.field, e.code) for e in other.errors] == [("clientOrderId", ErrorCode.CONFLICT)]
