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

from graphql_api.instruments.admin import Actor
from graphql_api.instruments.drafts import SymbolChanges
from graphql_api.platform.errors import ErrorCode
from graphql_api.realtime.channels import ORDERS_NEW_CHANNEL, order_channel
from graphql_api.realtime.events import decode_id_event
from graphql_api.realtime.hub import Mailbox
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


# --- amendOrder ------------------------------------------------------------------------


async def amend(
    services: Services, order: models.Order, price: str | None = None, quantity: str | None = None
) -> OrderOutcome:
    return await services.orders.amend_order(
        services.demo_user_id,
        order.id,
        limit_price=None if price is None else D(price),
        quantity=None if quantity is None else D(quantity),
    )


def queue(matcher: PaperMatcher, symbol: str = MOUTAI) -> list[tuple[str, list[int]]]:
    book = matcher.book(symbol)
    assert book is not None
    return [(str(price), [o.id for o in orders]) for price, orders in book.bids()]


async def test_a_smaller_quantity_keeps_the_place_in_the_queue_and_frees_cash(
    services: Services,
) -> None:
    first, second = await place(services, quantity="300"), await place(services)
    matcher = matcher_for(services)
    await matcher.resync()
    async with services.hub.subscribe([ORDERS_NEW_CHANNEL], conflate=False) as box:
        outcome = await amend(services, first, quantity="200")
        [event] = await received(box, first.id)
    assert outcome.errors == []
    assert outcome.order is not None
    assert (outcome.order.quantity, outcome.order.version) == (D(200), 1)
    assert outcome.order.queue_anchor is None  # never sent to the back
    # 300 lots' reservation became 200's: (200 + 100) * 1500.00 * 1.0003
    assert await reserved_cash(services) == D("450135")
    matcher.on_order_event(event)
    assert queue(matcher) == [("1500.00", [first.id, second.id])]
    await matcher.resync()  # the database ranks it the same
    assert queue(matcher) == [("1500.00", [first.id, second.id])]


async def test_a_new_price_or_a_larger_quantity_goes_to_the_back_of_the_level(
    services: Services,
) -> None:
    a, b = await place(services), await place(services)
    c = await place(services, price="1490.00")
    matcher = matcher_for(services)
    await matcher.resync()
    async with services.hub.subscribe([ORDERS_NEW_CHANNEL], conflate=False) as box:
        # C moves up to A and B's price: behind both, though its id is older than none
        moved = await amend(services, c, price="1500.00")
        # A grows: behind B and C
        grown = await amend(services, a, quantity="200")
        events = await received(box, c.id, a.id)
    assert moved.errors == [] and grown.errors == []
    for event in events:
        matcher.on_order_event(event)
    assert queue(matcher) == [("1500.00", [b.id, c.id, a.id])]
    # the ranking is stored: a resync (or a new leader) builds the same queue
    await matcher.resync()
    assert queue(matcher) == [("1500.00", [b.id, c.id, a.id])]
    # and a later order still queues behind all of them
    d = await place(services)
    await matcher.resync()
    assert queue(matcher) == [("1500.00", [b.id, c.id, a.id, d.id])]


async def test_a_tick_shares_its_volume_in_the_amended_priority(database_url: str) -> None:
    settings = make_settings(database_url, COMMISSION_RATE=str(RATE), MATCHER_ENABLED="false")
    async with open_services(settings) as services:
        await services.ingestor.ingest([tick(MOUTAI, "1500.00", "1499.99", "1500.01")])
        a, b = await place(services), await place(services)
        assert (await amend(services, a, quantity="200")).errors == []
        matcher = PaperMatcher(
            services.sessions,
            services.hub,
            services.catalog,
            services.orders,
            services.orders.risk_policy,
            partial_fills=True,
            resync_every=3600,
        )
        await matcher.resync()
        # a tick with volume for one lot fills B, which now comes first
        await matcher.on_tick(tick(MOUTAI, "1499.00", "1498.99", "1499.00", volume="100"))
        assert (await order_row(services, b.id)).status == "FILLED"
        assert (await order_row(services, a.id)).filled_quantity == 0


async def test_a_fill_computed_before_an_amendment_is_refused_by_the_version_fence(
    services: Services,
) -> None:
    order = await place(services, quantity="200")
    matcher = matcher_for(services)
    await matcher.resync()  # the matcher holds version 0 at 1500.00
    async with services.hub.subscribe([ORDERS_NEW_CHANNEL], conflate=False) as box:
        assert (await amend(services, order, price="1450.00")).errors == []
        [event] = await received(box, order.id)
    # a tick that crosses the old price but not the new one reaches the stale copy first
    await matcher.on_tick(tick(MOUTAI, "1480.00", "1479.99", "1480.00"))
    row = await order_row(services, order.id)
    assert (row.status, row.filled_quantity, row.limit_price) == ("NEW", D(0), D("1450.00"))
    # the re-booking event books the amended order, which the next crossing tick fills
    matcher.on_order_event(event)
    await matcher.on_tick(tick(MOUTAI, "1440.00", "1439.99", "1440.00"))
    row = await order_row(services, order.id)
    assert (row.status, row.average_fill_price) == ("FILLED", D("1440.00"))


async def test_the_quantity_may_not_go_down_to_what_is_filled(database_url: str) -> None:
    settings = make_settings(database_url, COMMISSION_RATE=str(RATE), MATCHER_ENABLED="false")
    async with open_services(settings) as services:
        await services.ingestor.ingest([tick(MOUTAI, "1500.00", "1499.99", "1500.01")])
        order = await place(services, quantity="300")
        matcher = PaperMatcher(
            services.sessions,
            services.hub,
            services.catalog,
            services.orders,
            services.orders.risk_policy,
            partial_fills=True,
            resync_every=3600,
        )
        await matcher.resync()
        await matcher.on_tick(tick(MOUTAI, "1500.00", "1499.99", "1500.00", volume="100"))
        filled = await order_row(services, order.id)
        assert (filled.status, filled.filled_quantity) == ("PARTIALLY_FILLED", D(100))
        for quantity in ("100", "0"):
            refused = await amend(services, filled, quantity=quantity)
            assert [(e.field, e.code) for e in refused.errors] == [
                ("quantity", ErrorCode.OUT_OF_RANGE)
            ]
        kept = await amend(services, filled, quantity="200")
        assert kept.errors == [] and kept.order is not None
        assert (kept.order.status, kept.order.quantity) == ("PARTIALLY_FILLED", D(200))
        # what stays reserved is the unfilled 100: 100 * 1500.00 * 1.0003
        assert await reserved_cash(services) == D("150045")


async def test_an_amendment_the_account_cannot_pay_for_changes_nothing(
    services: Services,
) -> None:
    # given an order holding 150,045 of the demo user's 1,000,000 CNY
    order = await place(services)
    before = await reserved_cash(services)
    # when it would grow past the buying power, or leave the price band
    poor = await amend(services, order, quantity="700")  # 700 * 1500 * 1.0003 > 1,000,000
    banded = await amend(services, order, price="1700.00")  # 10 % band around 1500
    fits = await amend(services, order, quantity="600", price="1500.00")
    # then each is the typed error a placement would have stored, and nothing changed
    assert [(e.field, e.code) for e in poor.errors] == [
        ("quantity", ErrorCode.INSUFFICIENT_BUYING_POWER)
    ]
    assert [(e.field, e.code) for e in banded.errors] == [
        ("limitPrice", ErrorCode.PRICE_OUT_OF_BAND)
    ]
    # 600 lots fit: its own reservation is free to use again (600 * 1500 * 1.0003 = 900,270)
    assert fits.errors == []
    row = await order_row(services, order.id)
    assert (row.quantity, row.version) == (D(600), 1)
    assert before == D("150045")
    assert await reserved_cash(services) == D("900270")


@pytest.mark.parametrize(
    ("price", "quantity", "field", "code"),
    [
        (None, None, "limitPrice", ErrorCode.REQUIRED),
        ("1500.005", None, "limitPrice", ErrorCode.INVALID_PRECISION),
        ("-1", None, "limitPrice", ErrorCode.OUT_OF_RANGE),
        (None, "150", "quantity", ErrorCode.INVALID_PRECISION),
        (None, "-100", "quantity", ErrorCode.OUT_OF_RANGE),
    ],
)
async def test_a_malformed_amendment_is_refused_like_a_malformed_order(
    services: Services, price: str | None, quantity: str | None, field: str, code: ErrorCode
) -> None:
    order = await place(services)
    outcome = await amend(services, order, price, quantity)
    assert [(e.field, e.code) for e in outcome.errors] == [(field, code)]
    assert (await order_row(services, order.id)).version == 0


async def test_only_your_own_resting_limit_orders_can_be_amended(services: Services) -> None:
    resting = await place(services)
    # another user's order does not exist for them
    theirs = await services.orders.amend_order(
        services.demo_user_id + 1_000, resting.id, quantity=D(200)
    )
    assert [(e.field, e.code) for e in theirs.errors] == [("id", ErrorCode.NOT_FOUND)]
    # orders that do not rest cannot be changed
    market = await services.orders.place_order(
        services.demo_user_id, OrderRequest(MOUTAI, OrderSide.BUY, OrderType.MARKET, D(100))
    )
    ioc = await place(services, time_in_force=TimeInForce.IOC)
    await services.orders.cancel_order(services.demo_user_id, resting.id)
    for order in (market.order, ioc, resting):
        assert order is not None
        refused = await amend(services, order, quantity="200")
        assert [(e.field, e.code) for e in refused.errors] == [("id", ErrorCode.NOT_AMENDABLE)]
        assert (await order_row(services, order.id)).quantity == D(100)


async def test_an_amendment_that_changes_nothing_writes_nothing(services: Services) -> None:
    order = await place(services)
    same = await amend(services, order, price="1500.00", quantity="100")
    assert same.errors == [] and same.order is not None
    assert same.order.version == 0


async def test_an_order_the_server_cancels_off_a_new_grid_leaves_the_matchers_book(
    services: Services,
) -> None:
    # given a resting order off the tick grid that is about to come
    order = await place(services, price="1500.01")
    matcher = matcher_for(services)
    await matcher.resync()
    # when the symbol's tick size becomes 0.10
    async with services.hub.subscribe([ORDERS_NEW_CHANNEL], conflate=False) as box:
        changed = await services.instruments.update(
            Actor(None, "cli:test"), MOUTAI, SymbolChanges(tick_size=D("0.10"))
        )
        [event] = await received(box, order.id)
    # then it is canceled and the matcher is told to drop it, as for a user's cancel
    assert changed.errors == []
    assert (await order_row(services, order.id)).status == "CANCELED"
    matcher.on_order_event(event)
    book = matcher.book(MOUTAI)
    assert book is not None and order.id not in book
