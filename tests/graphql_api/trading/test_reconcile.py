"""The matcher's periodic check of its book against the database (``reconcile``).

The book follows ``orders.new`` events; ``reconcile`` repairs what the bus
lost and must leave a book that already agrees untouched. The matcher here is
the test's own (the server's is off) and is fed no events, so what it books it
can only have read; SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.order_types import OrderSide, OrderType
from tests.conftest import make_settings
from tests.graphql_api.trading.test_matcher import order_row, place, tick
from tests.graphql_api.trading.test_matcher_rules import matcher_for


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, MATCHER_ENABLED="false")
    async with open_services(settings) as running:
        await running.ingestor.ingest([tick("ETHUSDT", "3400.00", "3399.00", "3401.00")])
        yield running


async def limit_buy(services: Services, price: str) -> int:
    order = await place(
        services,
        symbol="ETHUSDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        limit_price=Decimal(price),
    )
    assert order.status == "NEW"
    return order.id


async def test_reconcile_books_missed_orders_and_drops_closed_ones(services: Services) -> None:
    # given a matcher that read the book once, then missed every event
    matcher = matcher_for(services)
    kept = await limit_buy(services, "3390.00")
    canceled = await limit_buy(services, "3391.00")
    await matcher.resync()
    missed = await limit_buy(services, "3392.00")
    outcome = await services.orders.cancel_order(services.demo_user_id, canceled)
    assert outcome.errors == []
    # when it reconciles
    await matcher.reconcile()
    # then it holds exactly the open orders, at their stored versions
    book = matcher.book("ETHUSDT")
    assert book is not None
    assert sorted(order.id for order in book.orders()) == [kept, missed]
    for order_id in (kept, missed):
        assert book.versions()[order_id] == (await order_row(services, order_id)).version


async def test_reconcile_leaves_an_agreeing_book_as_it_is(services: Services) -> None:
    # given a book that agrees with the database
    matcher = matcher_for(services)
    first = await limit_buy(services, "3390.00")
    await limit_buy(services, "3391.00")
    await matcher.resync()
    book = matcher.book("ETHUSDT")
    assert book is not None
    held = book.get(first)
    # when it reconciles
    await matcher.reconcile()
    # then nothing was re-read: the same book holds the same order objects
    assert matcher.book("ETHUSDT") is book
    assert book.get(first) is held


async def test_reconcile_keeps_a_later_version_the_book_already_holds(
    services: Services,
) -> None:
    # given a book whose order moved on in memory (a fill the tick loop applied after
    # the commit another reader has not seen yet)
    matcher = matcher_for(services)
    order_id = await limit_buy(services, "3390.00")
    await matcher.resync()
    book = matcher.book("ETHUSDT")
    assert book is not None
    held = book.get(order_id)
    assert held is not None
    held.version += 5
    # when it reconciles, the stored row (an older version) does not replace it
    await matcher.reconcile()
    assert book.get(order_id) is held
