"""STOP and STOP_LIMIT: wait for the last price to reach the stop, then act as MARKET / LIMIT.

Orders go through the real OrderService (SQLite and PostgreSQL); ticks are
handed to a matcher of the test's own (the server's is switched off), so each
step is deterministic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from graphql_api.instruments.admin import Actor
from graphql_api.platform.errors import ErrorCode
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from graphql_api.trading.orders import OrderOutcome
from storage import models
from storage.repositories import accounts as account_repo
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


def matcher_for(services: Services) -> PaperMatcher:
    return PaperMatcher(
        services.sessions,
        services.hub,
        services.catalog,
        services.orders,
        services.orders.risk_policy,
        resync_every=3600,
    )


async def submit(
    services: Services,
    kind: OrderType,
    stop: str | None = "1550.00",
    limit: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    **extra: Any,
) -> OrderOutcome:
    return await services.orders.place_order(
        services.demo_user_id,
        OrderRequest(
            MOUTAI,
            OrderSide.BUY,
            kind,
            D(100),
            None if limit is None else D(limit),
            tif,
            stop_price=None if stop is None else D(stop),
            **extra,
        ),
    )


async def place(services: Services, kind: OrderType, **fields: Any) -> models.Order:
    outcome = await submit(services, kind, **fields)
    assert outcome.errors == [] and outcome.order is not None
    assert outcome.order.status == "NEW", outcome.order.reject_reason
    return outcome.order


@pytest.mark.parametrize(
    ("kind", "stop", "limit", "tif", "field", "code"),
    [
        (OrderType.STOP, None, None, TimeInForce.GTC, "stopPrice", ErrorCode.REQUIRED),
        (OrderType.STOP, "1550.005", None, TimeInForce.GTC, "stopPrice",
         ErrorCode.INVALID_PRECISION),
        (OrderType.STOP, "-1", None, TimeInForce.GTC, "stopPrice", ErrorCode.OUT_OF_RANGE),
        (OrderType.STOP, "1550.00", "1560.00", TimeInForce.GTC, "limitPrice",
         ErrorCode.NOT_ALLOWED),
        (OrderType.STOP_LIMIT, "1550.00", None, TimeInForce.GTC, "limitPrice",
         ErrorCode.REQUIRED),
        (OrderType.STOP, "1550.00", None, TimeInForce.IOC, "timeInForce", ErrorCode.NOT_ALLOWED),
        (OrderType.STOP_LIMIT, "1550.00", "1560.00", TimeInForce.FOK, "timeInForce",
         ErrorCode.NOT_ALLOWED),
        (OrderType.LIMIT, "1550.00", "1500.00", TimeInForce.GTC, "stopPrice",
         ErrorCode.NOT_ALLOWED),
        (OrderType.MARKET, "1550.00", None, TimeInForce.GTC, "stopPrice", ErrorCode.NOT_ALLOWED),
    ],
)  # fmt: skip
async def test_a_malformed_stop_is_refused_with_a_typed_error(
    services: Services,
    kind: OrderType,
    stop: str | None,
    limit: str | None,
    tif: TimeInForce,
    field: str,
    code: ErrorCode,
) -> None:
    outcome = await submit(services, kind, stop=stop, limit=limit, tif=tif)
    assert outcome.order is None
    assert [(e.field, e.code) for e in outcome.errors] == [(field, code)]


async def test_a_buy_stop_reserves_at_its_stop_plus_the_market_buffer(services: Services) -> None:
    order = await place(services, OrderType.STOP)
    assert order.reserve_price == D("1627.5000")  # 1550.00 * 1.05
    async with services.sessions() as session:
        reserved = await account_repo.reserved_for_buys(session, services.demo_user_id, "CNY", RATE)
    assert reserved == D("100") * D("1627.5") * (1 + RATE)


async def test_a_stop_waits_for_the_last_price_then_fills_as_a_market_order(
    services: Services,
) -> None:
    order = await place(services, OrderType.STOP)
    matcher = matcher_for(services)
    await matcher.resync()
    # a tick below the stop neither triggers nor fills it, though a market order would fill
    await matcher.on_tick(tick(MOUTAI, "1549.99", "1549.98", "1550.00"))
    row = await order_row(services, order.id)
    assert (row.status, row.triggered_at) == ("NEW", None)
    # the last price reaching the stop triggers it, and it fills on that tick at the ask
    trigger = tick(MOUTAI, "1550.00", "1549.99", "1550.02")
    await matcher.on_tick(trigger)
    row = await order_row(services, order.id)
    assert (row.type, row.status, row.average_fill_price) == ("STOP", "FILLED", D("1550.02"))
    assert row.triggered_at == trigger.time


async def test_a_triggered_stop_limit_rests_at_its_limit_and_survives_a_resync(
    services: Services,
) -> None:
    order = await place(services, OrderType.STOP_LIMIT, limit="1555.00")
    matcher = matcher_for(services)
    await matcher.resync()
    # the trigger tick's ask is above the limit: triggered, not filled
    await matcher.on_tick(tick(MOUTAI, "1556.00", "1555.99", "1556.01"))
    row = await order_row(services, order.id)
    assert row.status == "NEW" and row.triggered_at is not None
    # the trigger is stored: a resync books it as the LIMIT order it now is
    await matcher.resync()
    book = matcher.book(MOUTAI)
    assert book is not None
    assert [(str(p), [o.id for o in os]) for p, os in book.bids()] == [("1555.00", [order.id])]
    # and a tick back under the stop that crosses the limit fills it
    await matcher.on_tick(tick(MOUTAI, "1545.00", "1544.99", "1545.01"))
    row = await order_row(services, order.id)
    assert (row.status, row.average_fill_price) == ("FILLED", D("1545.01"))


async def test_a_stop_canceled_before_its_trigger_is_never_triggered(services: Services) -> None:
    order = await place(services, OrderType.STOP)
    matcher = matcher_for(services)
    await matcher.resync()  # the matcher holds it; the cancel's event never reaches it
    await services.orders.cancel_order(services.demo_user_id, order.id)
    await matcher.on_tick(tick(MOUTAI, "1560.00", "1559.99", "1560.01"))
    row = await order_row(services, order.id)
    assert (row.status, row.triggered_at, row.filled_quantity) == ("CANCELED", None, D(0))
    book = matcher.book(MOUTAI)
    assert book is not None and order.id not in book


async def test_stop_orders_cannot_be_amended(services: Services) -> None:
    order = await place(services, OrderType.STOP_LIMIT, limit="1555.00")
    refused = await services.orders.amend_order(
        services.demo_user_id, order.id, limit_price=D("1556.00")
    )
    assert [(e.field, e.code) for e in refused.errors] == [("id", ErrorCode.NOT_AMENDABLE)]


async def test_a_halted_symbols_stop_is_not_triggered_until_it_resumes(
    services: Services,
) -> None:
    order = await place(services, OrderType.STOP)
    matcher = matcher_for(services)
    await matcher.resync()
    root = Actor(None, "cli:test")
    assert (await services.instruments.set_tradable(root, MOUTAI, False)).errors == []
    await matcher.on_tick(tick(MOUTAI, "1560.00", "1559.99", "1560.01"))
    row = await order_row(services, order.id)
    assert (row.status, row.triggered_at) == ("NEW", None)
    assert (await services.instruments.set_tradable(root, MOUTAI, True)).errors == []
    await matcher.on_tick(tick(MOUTAI, "1561.00", "1560.99", "1561.01"))
    row = await order_row(services, order.id)
    assert (row.status, row.average_fill_price) == ("FILLED", D("1561.01"))
