"""The matcher's periodic check of its book against the database (``reconcile``).

The book follows ``orders.new`` events; ``reconcile`` repairs what the bus
lost and must leave a book that already agrees untouched. The matcher here is
the test's own (the server's is off) and is fed no events, so what it books it
can only have read; SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading import book as book_module
from graphql_api.trading import matcher as matcher_module
from graphql_api.trading.order_types import OrderSide, OrderType
from storage.repositories import accounts as account_repo
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
        held = book.get(order_id)
        assert held is not None
        assert held.version == (await order_row(services, order_id)).version


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
    book.restate(held, held.remaining, held.version + 5)
    # when it reconciles, the stored row (an older version) does not replace it
    await matcher.reconcile()
    assert book.get(order_id) is held


async def test_reconcile_compares_order_by_order_only_the_buckets_that_differ(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given buckets of two ids (so a few orders span several) and a matcher that read
    # the book once, then missed an order and the cancel of another
    monkeypatch.setattr(book_module, "FINGERPRINT_BUCKET", 2)
    monkeypatch.setattr(matcher_module, "FINGERPRINT_BUCKET", 2)
    matcher = matcher_for(services)
    placed = [await limit_buy(services, f"{3380 + n}.00") for n in range(6)]
    await matcher.resync()
    canceled = placed[1]
    outcome = await services.orders.cancel_order(services.demo_user_id, canceled)
    assert outcome.errors == []
    missed = await limit_buy(services, "3390.00")
    compared: list[tuple[int, int]] = []
    versions = account_repo.open_order_versions

    async def spied(session: Any, symbol: str, *, first_id: int, end_id: int) -> Any:
        compared.append((first_id, end_id))
        return await versions(session, symbol, first_id=first_id, end_id=end_id)

    monkeypatch.setattr(account_repo, "open_order_versions", spied)
    # when it reconciles
    await matcher.reconcile()
    # then only the buckets of the canceled and the missed order were compared
    assert sorted(compared) == sorted(
        {(order_id // 2 * 2, order_id // 2 * 2 + 2) for order_id in (canceled, missed)}
    )
    book = matcher.book("ETHUSDT")
    assert book is not None
    wanted = [order_id for order_id in placed if order_id != canceled] + [missed]
    assert sorted(order.id for order in book.orders()) == sorted(wanted)
    # and a second pass finds nothing to compare
    compared.clear()
    await matcher.reconcile()
    assert compared == []
