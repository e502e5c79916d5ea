"""OrderService: placement idempotency across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from graphql_api.server.runtime import open_services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from graphql_api.trading.orders import OrderOutcome
from storage import models
from tests.conftest import make_settings, postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database_url(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


async def test_the_same_client_order_id_from_two_processes_stores_one_order(
    database_url: str,
) -> None:
    # given two server processes' services on one PostgreSQL database (each
    # serialises a user's placements only within itself)
    settings = make_settings(database_url)
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
