"""Placement by group commit: a batch decides each order as if it were placed alone.

Run on SQLite and PostgreSQL: concurrent callers share transactions, and
within a batch an order sees the reservations of the ones before it, keeps its
own idempotency, and its failures are its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from graphql_api.platform.errors import ErrorCode
from graphql_api.trading import orders as orders_module
from graphql_api.trading import placement
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from graphql_api.trading.risk import RejectReason
from storage import models
from storage.timeseries import Tick
from tests.conftest import sql_database
from tests.graphql_api.conftest import Embedded, open_embedded

SYMBOL = "600519.SH"  # tick 0.01, lot 100, CNY; the demo user holds 1,000,000 CNY
D = Decimal
# 100 shares at 1500.00 reserve 150,045.00 CNY (commission 0.03 %): six fit, not seven.
FITTING = 6


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def parts(request: pytest.FixtureRequest) -> AsyncIterator[Embedded]:
    async with sql_database(request, request.param) as url, open_embedded(url) as embedded:
        price = D("1500.00")
        tick = Tick(SYMBOL, datetime.now(UTC), price, price - D("0.01"), price + D("0.01"), D(100))
        await embedded.store.write_ticks([tick])
        yield embedded


def buy(quantity: str = "100", **extra: Any) -> OrderRequest:
    return OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, D(quantity), D("1500.00"), **extra)


async def order_count(parts: Embedded) -> int:
    async with parts.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(models.Order)) or 0)


async def test_concurrent_callers_share_transactions_and_reservations(parts: Embedded) -> None:
    # given more concurrent buyers than the cash can pay for
    callers = [
        parts.orders.place_order(parts.demo_user_id, buy(client_order_id=f"c{n}"))
        for n in range(10)
    ]
    outcomes = await asyncio.gather(*callers)
    # then they were written in fewer transactions than orders
    commit = parts.orders.placements
    assert commit.batches < 10 and commit.largest_batch > 1
    # and exactly as many were accepted as the cash reserves, in arrival order
    statuses = [outcome.order.status for outcome in outcomes if outcome.order is not None]
    assert statuses == ["NEW"] * FITTING + ["REJECTED"] * (10 - FITTING)
    rejected = outcomes[FITTING].order
    assert rejected is not None
    assert rejected.reject_reason == RejectReason.INSUFFICIENT_BUYING_POWER.value
    assert await order_count(parts) == 10


async def test_a_batch_decides_like_orders_placed_one_by_one(parts: Embedded) -> None:
    requests = [buy(), buy("200"), buy("300"), buy("100"), buy("200")]
    batched = await parts.orders.place_orders(parts.demo_user_id, requests)
    # one by one, the same requests on a fresh account would give: 100 (150,045),
    # 200 (300,090), 300 (450,135) fit = 900,270; 100 more would exceed 1,000,000
    assert [o.order.status if o.order else None for o in batched] == [
        "NEW",
        "NEW",
        "NEW",
        "REJECTED",
        "REJECTED",
    ]
    assert parts.orders.placements.largest_batch == len(requests)
    async with parts.sessions() as session:
        spec = parts.catalog.cached(SYMBOL)
        assert spec is not None
        exposure = await parts.orders.exposure(session, parts.demo_user_id, spec, "CNY")
    assert exposure.reserved_cash == D("900270")


async def test_a_bad_order_in_a_batch_fails_alone(parts: Embedded) -> None:
    outcomes = await parts.orders.place_orders(
        parts.demo_user_id,
        [
            buy(client_order_id="a"),
            buy("150"),  # not a whole lot
            OrderRequest("NOPE", OrderSide.BUY, OrderType.MARKET, D(100)),
            buy(strategy_id=999_999),  # not the user's (nor anyone's) strategy
            buy(client_order_id="b"),
        ],
    )
    assert [o.order.status if o.order else None for o in outcomes] == [
        "NEW",
        None,
        None,
        None,
        "NEW",
    ]
    codes = [[error.code for error in o.errors] for o in outcomes]
    assert codes == [
        [],
        [ErrorCode.INVALID_PRECISION],
        [ErrorCode.UNKNOWN_SYMBOL],
        [ErrorCode.NOT_FOUND],
        [],
    ]
    assert await order_count(parts) == 2


async def test_a_client_order_id_twice_in_one_batch_is_one_order(parts: Embedded) -> None:
    first, again, other = await parts.orders.place_orders(
        parts.demo_user_id,
        [
            buy(client_order_id="dup"),
            buy(client_order_id="dup"),  # the same request: a replay of the first
            buy("200", client_order_id="dup"),  # another request under that key
        ],
    )
    assert first.order is not None and again.order is not None
    assert again.order.id == first.order.id and again.errors == []
    assert other.order is None
    assert [error.code for error in other.errors] == [ErrorCode.CONFLICT]
    assert await order_count(parts) == 1
    # and a later batch replays it too, without assessing it again
    [later] = await parts.orders.place_orders(parts.demo_user_id, [buy(client_order_id="dup")])
    assert later.order is not None and later.order.id == first.order.id


async def test_a_sell_cannot_use_quantity_an_earlier_sell_of_the_batch_reserved(
    parts: Embedded,
) -> None:
    async with parts.sessions() as session:
        session.add(
            models.Position(
                user_id=parts.demo_user_id,
                symbol_code=SYMBOL,
                quantity=D(300),
                cost_basis=D("420000.00"),
                realized_pnl=D(0),
                updated_at=datetime.now(UTC),
            )
        )
        await session.commit()
    sell = OrderRequest(SYMBOL, OrderSide.SELL, OrderType.LIMIT, D(200), D("1500.00"))
    first, second = await parts.orders.place_orders(parts.demo_user_id, [sell, sell])
    assert first.order is not None and first.order.status == "NEW"
    assert second.order is not None and second.order.status == "REJECTED"
    assert second.order.reject_reason == RejectReason.INSUFFICIENT_POSITION.value


async def test_a_batch_that_fails_is_retried_order_by_order(
    parts: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a write step that fails for any batch of more than one order
    real = placement.place_batch

    async def fails_when_batched(session: Any, placements: Any, **kwargs: Any) -> Any:
        if len(placements) > 1:
            raise ValueError("one of these orders upsets the database")
        return await real(session, placements, **kwargs)

    monkeypatch.setattr(orders_module, "place_batch", fails_when_batched)
    outcomes = await parts.orders.place_orders(
        parts.demo_user_id, [buy(client_order_id="x"), buy(client_order_id="y")]
    )
    # then each order was placed alone, and nothing of the failed batch remains
    assert [o.order.status if o.order else None for o in outcomes] == ["NEW", "NEW"]
    assert await order_count(parts) == 2
