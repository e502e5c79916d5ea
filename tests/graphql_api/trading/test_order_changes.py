"""Changing resting orders: cancelAllOrders, amendOrder, and how the matcher hears of it.

Everything goes through the real OrderService and database (SQLite and
PostgreSQL); the server's matcher is switched off and a matcher of the test's
own is handed the staged ``orders.new`` events and the ticks, so each step is
deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from graphql_api.platform.errors import ErrorCode
from graphql_api.realtime.channels import ORDERS_NEW_CHANNEL, order_channel
from graphql_api.realtime.events import decode_id_event
from graphql_api.realtime.hub import Mailbox
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.repositories import accounts as account_repo
from tests.conftest import make_settings
from tests.graphql_api.trading.test_matcher import order_row, tick

RATE = Decimal("0.0003")
D = Decimal
MOUTAI = "600519.SH"  # tick 0.01, lot 100, CNY
PINGAN = "000001.SZ"  # tick 0.01, lot 100, CNY


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, COMMISSION_RATE=str(RATE), MATCHER_ENABLED="false")
    async with open_services(settings) as running:
        await running.ingestor.ingest(
            [
                tick(MOUTAI, "1500.00", "1499.99", "1500.01"),
                tick(PINGAN, "11.00", "10.99", "11.01"),
            ]
        )
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


async def place(
    services: Services,
    symbol: str = MOUTAI,
    quantity: str = "100",
    price: str = "1500.00",
    side: OrderSide = OrderSide.BUY,
    **extra: Any,
) -> models.Order:
    outcome = await services.orders.place_order(
        services.demo_user_id,
        OrderRequest(symbol, side, OrderType.LIMIT, D(quantity), D(price), **extra),
    )
    assert outcome.errors == [] and outcome.order is not None
    assert outcome.order.status == "NEW", outcome.order.reject_reason
    return outcome.order


async def reserved_cash(services: Services) -> Decimal:
    async with services.sessions() as session:
        return await account_repo.reserved_for_buys(session, services.demo_user_id, "CNY", RATE)


async def received(box: Mailbox, *order_ids: int, version: int = 1) -> list[dict[str, Any]]:
    """The event about each of ``order_ids`` at ``version``, in arrival order (the outbox
    relays them after commit; events of earlier steps still on their way are skipped)."""
    events: list[dict[str, Any]] = []
    waiting = list(order_ids)
    while waiting:
        event = decode_id_event((await asyncio.wait_for(box.get(), 5)).message)
        if event["id"] in waiting and event["version"] == version:
            waiting.remove(event["id"])
            events.append(event)
    return events


# --- cancelAllOrders -----------------------------------------------------------------


async def test_cancel_all_of_one_symbol_closes_only_its_open_orders_and_releases_them(
    services: Services,
) -> None:
    # given two open orders on one symbol, one on another, and a closed one
    first, second = await place(services), await place(services, price="1490.00")
    other = await place(services, PINGAN, price="11.00")
    done = await place(services)
    await services.orders.cancel_order(services.demo_user_id, done.id)
    matcher = matcher_for(services)
    await matcher.resync()
    # when the user cancels all of the first symbol's orders
    async with services.hub.subscribe([ORDERS_NEW_CHANNEL], conflate=False) as box:
        outcome = await services.orders.cancel_all_orders(services.demo_user_id, MOUTAI)
        events = await received(box, first.id, second.id)
    # then exactly its open orders are canceled, by id, in one go
    assert outcome.errors == []
    assert [(o.id, o.status, o.version) for o in outcome.orders] == [
        (first.id, "CANCELED", 1),
        (second.id, "CANCELED", 1),
    ]
    assert (await order_row(services, other.id)).status == "NEW"
    assert (await order_row(services, done.id)).version == 1  # untouched
    # and only the other symbol's order still holds cash: 100 * 11.00 * 1.0003
    assert await reserved_cash(services) == D("1100.33")
    # and the matcher is told to drop both, and does
    assert [(e["kind"], e["id"], e["version"]) for e in events] == [
        ("closed", first.id, 1),
        ("closed", second.id, 1),
    ]
    for event in events:
        matcher.on_order_event(event)
    moutai_book = matcher.book(MOUTAI)
    assert moutai_book is not None and len(moutai_book) == 0
    pingan_book = matcher.book(PINGAN)
    assert pingan_book is not None and other.id in pingan_book


async def test_cancel_all_announces_each_order_as_a_single_cancel_does(
    services: Services,
) -> None:
    first, second = await place(services), await place(services, PINGAN, price="11.00")
    channel = order_channel(services.demo_user_id)
    async with services.hub.subscribe([channel], conflate=False) as box:
        outcome = await services.orders.cancel_all_orders(services.demo_user_id)
        updates = await received(box, first.id, second.id)
    assert [o.id for o in outcome.orders] == [first.id, second.id]
    assert updates == [
        {"kind": "order", "id": first.id, "status": "CANCELED", "version": 1},
        {"kind": "order", "id": second.id, "status": "CANCELED", "version": 1},
    ]
    assert await reserved_cash(services) == 0


async def test_cancel_all_with_nothing_open_or_for_someone_else_cancels_nothing(
    services: Services,
) -> None:
    assert (await services.orders.cancel_all_orders(services.demo_user_id)).orders == []
    mine = await place(services)
    # another user's call does not reach the demo user's orders
    outcome = await services.orders.cancel_all_orders(services.demo_user_id + 1_000)
    assert (outcome.orders, outcome.errors) == ([], [])
    assert (await order_row(services, mine.id)).status == "NEW"


async def test_cancel_all_of_an_unknown_symbol_is_a_typed_error_and_changes_nothing(
    services: Services,
) -> None:
    mine = await place(services)
    outcome = await services.orders.cancel_all_orders(services.demo_user_id, "NOPE.SH")
    assert outcome.orders == []
    assert [(e.field, e.code) for e in outcome.errors] == [("symbol", ErrorCode.UNKNOWN_SYMBOL)]
    assert (await order_row(services, mine.id)).status == "NEW"


async def test_a_single_cancel_takes_the_order_out_of_the_matchers_book(
    services: Services,
) -> None:
    order = await place(services)
    matcher = matcher_for(services)
    await matcher.resync()
    async with services.hub.subscribe([ORDERS_NEW_CHANNEL], conflate=False) as box:
        await services.orders.cancel_order(services.demo_user_id, order.id)
        [event] = await received(box, order.id)
    # a stale copy of the event (older version) would not undo a newer booking
    matcher.on_order_event({**event, "version": -1})
    book = matcher.book(MOUTAI)
    assert book is not None and order.id in book
    matcher.on_order_event(event)
    assert order.id not in book
