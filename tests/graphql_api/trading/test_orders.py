"""Order entry: validation, idempotency by clientOrderId, refusals kept as REJECTED orders.

Most tests run the real OrderService on the embedded SQLite database with a
quote written straight to the store; one races two processes on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from graphql_api.platform.errors import ErrorCode
from graphql_api.realtime.events import decode_id_event
from graphql_api.server.runtime import open_services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from graphql_api.trading.orders import OrderOutcome
from storage import models
from storage.timeseries import Tick
from tests.conftest import make_settings, postgres_database
from tests.graphql_api.conftest import Embedded


@pytest.fixture
async def postgres_url_of_a_fresh_database(
    postgres_url: str, postgres_template: str
) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


@pytest.mark.postgres
async def test_the_same_client_order_id_from_two_processes_stores_one_order(
    postgres_url_of_a_fresh_database: str,
) -> None:
    # given two server processes' services on one PostgreSQL database (each
    # serialises a user's placements only within itself)
    settings = make_settings(postgres_url_of_a_fresh_database)
    async with open_services(settings) as first, open_services(settings) as second:
        # when both place the same clientOrderId at the same moment, several times
        outcomes: list[OrderOutcome] = []
        for attempt in range(5):
            keyed = OrderRequest(
                symbol="600519.SH",
                side=OrderSide.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal("100"),
                limit_price=Decimal("1500.00"),
                client_order_id=f"same-key-{attempt}",
            )
            outcomes += await asyncio.gather(
                first.orders.place_order(first.demo_user_id, keyed),
                second.orders.place_order(second.demo_user_id, keyed),
            )
        # then each pair answers with one and the same stored order, never an error
        for left, right in zip(outcomes[::2], outcomes[1::2], strict=True):
            assert left.errors == [] and right.errors == []
            assert left.order is not None and right.order is not None
            assert left.order.id == right.order.id
        async with first.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(models.Order)
                .where(models.Order.client_order_id.like("same-key-%"))
            )
        assert count == 5


# --- on the embedded SQLite database ------------------------------------------------------

SYMBOL = "600519.SH"  # tick 0.01, lot 100, CNY; the demo user holds 1,000,000 CNY
D = Decimal


async def quote(embedded: Embedded, last: str = "1500.00") -> None:
    price = D(last)
    tick = Tick(SYMBOL, datetime.now(UTC), price, price - D("0.01"), price + D("0.01"), D(100))
    await embedded.store.write_ticks([tick])


def limit_buy(quantity: str = "100", price: str = "1500.00", **extra: Any) -> OrderRequest:
    return OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, D(quantity), D(price), **extra)


async def stored_orders(embedded: Embedded) -> list[models.Order]:
    async with embedded.sessions() as session:
        return list(await session.scalars(select(models.Order).order_by(models.Order.id)))


async def staged_events(embedded: Embedded) -> list[dict[str, Any]]:
    async with embedded.sessions() as session:
        rows = await session.scalars(select(models.OutboxEvent).order_by(models.OutboxEvent.id))
        return [decode_id_event(row.payload) for row in rows]


@pytest.mark.parametrize(
    ("request_", "field", "code"),
    [
        (OrderRequest("NOPE", OrderSide.BUY, OrderType.MARKET, D(100)), "symbol",
         ErrorCode.UNKNOWN_SYMBOL),
        (limit_buy("0"), "quantity", ErrorCode.OUT_OF_RANGE),
        (limit_buy("-100"), "quantity", ErrorCode.OUT_OF_RANGE),
        (limit_buy("NaN"), "quantity", ErrorCode.OUT_OF_RANGE),
        (limit_buy("150"), "quantity", ErrorCode.INVALID_PRECISION),  # lot size 100
        (OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, D(100)), "limitPrice",
         ErrorCode.REQUIRED),
        (limit_buy(price="0"), "limitPrice", ErrorCode.OUT_OF_RANGE),
        (limit_buy(price="1500.005"), "limitPrice", ErrorCode.INVALID_PRECISION),
        (OrderRequest(SYMBOL, OrderSide.BUY, OrderType.MARKET, D(100), D("1500.00")),
         "limitPrice", ErrorCode.NOT_ALLOWED),
        (limit_buy(client_order_id="x" * 65), "clientOrderId", ErrorCode.OUT_OF_RANGE),
        (limit_buy(strategy_id=999_999), "strategyId", ErrorCode.NOT_FOUND),
    ],
)  # fmt: skip
async def test_a_malformed_order_is_refused_and_leaves_no_row(
    embedded: Embedded, request_: OrderRequest, field: str, code: ErrorCode
) -> None:
    await quote(embedded)
    outcome = await embedded.orders.place_order(embedded.demo_user_id, request_)
    assert outcome.order is None
    assert [(e.field, e.code) for e in outcome.errors] == [(field, code)]
    assert await stored_orders(embedded) == []
    assert await staged_events(embedded) == []


async def test_every_problem_of_an_order_is_reported_at_once(embedded: Embedded) -> None:
    request = OrderRequest(
        "NOPE", OrderSide.SELL, OrderType.MARKET, D(-1), D("1"), client_order_id=""
    )
    outcome = await embedded.orders.place_order(embedded.demo_user_id, request)
    assert [(e.field, e.code) for e in outcome.errors] == [
        ("symbol", ErrorCode.UNKNOWN_SYMBOL),
        ("quantity", ErrorCode.OUT_OF_RANGE),
        ("limitPrice", ErrorCode.NOT_ALLOWED),
        ("clientOrderId", ErrorCode.OUT_OF_RANGE),
    ]


async def test_an_accepted_order_is_stored_reserved_and_announced(embedded: Embedded) -> None:
    await quote(embedded)
    outcome = await embedded.orders.place_order(embedded.demo_user_id, limit_buy())
    assert outcome.errors == []
    order = outcome.order
    assert order is not None
    assert (order.status, order.reject_reason, order.version) == ("NEW", None, 0)
    assert (order.reserve_price, order.filled_quantity, order.expires_at) == (
        D("1500.00"), D(0), None
    )  # fmt: skip
    assert [o.id for o in await stored_orders(embedded)] == [order.id]
    # staged in the same transaction: the user's update, and the order for the matcher
    user_event, matcher_event = await staged_events(embedded)
    assert user_event == {"kind": "order", "id": order.id, "status": "NEW", "version": 0}
    assert (matcher_event["id"], matcher_event["remaining"]) == (order.id, "100")
    # its cash is now held back from other orders: 100 * 1500.00 * 1.0003
    async with embedded.sessions() as session:
        spec = embedded.catalog.cached(SYMBOL)
        assert spec is not None
        exposure = await embedded.orders.exposure(session, embedded.demo_user_id, spec, "CNY")
    assert exposure.reserved_cash == D("150045")


async def test_a_day_order_expires_at_the_next_session_close(embedded: Embedded) -> None:
    await quote(embedded)
    before = datetime.now(UTC)
    outcome = await embedded.orders.place_order(
        embedded.demo_user_id, limit_buy(time_in_force=TimeInForce.DAY)
    )
    assert outcome.order is not None and outcome.order.expires_at is not None
    expires = outcome.order.expires_at.replace(tzinfo=UTC)  # SQLite keeps no offset
    assert (expires.hour, expires.minute) == (7, 0)  # 15:00 in Beijing
    assert before < expires <= before + timedelta(days=1)


async def test_an_order_policy_refuses_is_kept_as_rejected_with_its_reason(
    embedded: Embedded,
) -> None:
    await quote(embedded)
    # 1000 * 1500.00 * 1.0003 = 1,500,450 CNY: more than the 1,000,000 the demo user has
    outcome = await embedded.orders.place_order(embedded.demo_user_id, limit_buy("1000"))
    assert outcome.errors == []
    order = outcome.order
    assert order is not None
    assert (order.status, order.reject_reason) == ("REJECTED", "INSUFFICIENT_BUYING_POWER")
    [kept] = await stored_orders(embedded)
    assert (kept.id, kept.status, kept.reject_reason) == (
        order.id, "REJECTED", "INSUFFICIENT_BUYING_POWER"
    )  # fmt: skip
    # the user hears of it; the matcher does not
    assert await staged_events(embedded) == [
        {"kind": "order", "id": order.id, "status": "REJECTED", "version": 0}
    ]


async def test_the_same_client_order_id_again_answers_with_the_stored_order(
    embedded: Embedded,
) -> None:
    await quote(embedded)
    first = await embedded.orders.place_order(
        embedded.demo_user_id, limit_buy(client_order_id="key-1")
    )
    again = await embedded.orders.place_order(
        embedded.demo_user_id, limit_buy(client_order_id="key-1")
    )
    assert first.order is not None and again.order is not None
    assert again.errors == [] and again.order.id == first.order.id
    assert len(await stored_orders(embedded)) == 1
    assert len(await staged_events(embedded)) == 2  # announced once


async def test_a_client_order_id_reused_for_another_order_is_a_conflict(
    embedded: Embedded,
) -> None:
    await quote(embedded)
    await embedded.orders.place_order(embedded.demo_user_id, limit_buy(client_order_id="key-1"))
    other = await embedded.orders.place_order(
        embedded.demo_user_id, limit_buy("200", client_order_id="key-1")
    )
    assert other.order is None
    assert [(e.field, e.code) for e in other.errors] == [("clientOrderId", ErrorCode.CONFLICT)]
    assert len(await stored_orders(embedded)) == 1


async def test_a_rejected_order_is_replayed_not_assessed_again(embedded: Embedded) -> None:
    # no quote and no daily bar centre the band: refused for want of a price
    async with embedded.sessions() as session:
        await session.execute(delete(models.DailyBar).where(models.DailyBar.symbol_code == SYMBOL))
        await session.commit()
    refused = await embedded.orders.place_order(
        embedded.demo_user_id, limit_buy(client_order_id="key-2")
    )
    assert refused.order is not None and refused.order.reject_reason == "NO_MARKET_PRICE"
    await quote(embedded)  # now it would be accepted ...
    again = await embedded.orders.place_order(
        embedded.demo_user_id, limit_buy(client_order_id="key-2")
    )
    # ... but the key names the order already decided
    assert again.order is not None
    assert (again.order.id, again.order.status) == (refused.order.id, "REJECTED")


async def test_canceling_closes_an_open_order_once_and_releases_its_cash(
    embedded: Embedded,
) -> None:
    await quote(embedded)
    placed = await embedded.orders.place_order(embedded.demo_user_id, limit_buy())
    assert placed.order is not None
    canceled = await embedded.orders.cancel_order(embedded.demo_user_id, placed.order.id)
    assert canceled.errors == []
    assert canceled.order is not None
    assert (canceled.order.status, canceled.order.version) == ("CANCELED", 1)
    again = await embedded.orders.cancel_order(embedded.demo_user_id, placed.order.id)
    assert [(e.field, e.code) for e in again.errors] == [("id", ErrorCode.NOT_CANCELABLE)]
    unknown = await embedded.orders.cancel_order(embedded.demo_user_id + 1, placed.order.id)
    assert [(e.field, e.code) for e in unknown.errors] == [("id", ErrorCode.NOT_FOUND)]
    async with embedded.sessions() as session:
        spec = embedded.catalog.cached(SYMBOL)
        assert spec is not None
        exposure = await embedded.orders.exposure(session, embedded.demo_user_id, spec, "CNY")
    assert exposure.reserved_cash == 0
