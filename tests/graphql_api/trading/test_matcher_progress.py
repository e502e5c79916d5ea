"""What the matcher tells ``/metrics`` about itself: whether it leads, how far it is
behind the tick stream, and how long fills take from their tick's arrival.

The matcher runs as in the server (under leader election, fed by the real
ingestor and bus). A matcher that falls behind is made by a real row lock: another
transaction holds the order the matcher wants to fill, as a slow database would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.timeseries import Tick
from tests.conftest import make_settings, sql_database

SYMBOL = "600519.SH"


def tick(last: str, symbol: str = SYMBOL) -> Tick:
    price, cent = Decimal(last), Decimal("0.01")
    return Tick(symbol, datetime.now(UTC), price, price - cent, price + cent, Decimal(1000))


async def eventually(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def leading(services: Services) -> None:
    async def check() -> bool:
        return services.activity.leaders["matcher"].is_leader

    await eventually(check)


async def market_buy(services: Services) -> models.Order:
    request = OrderRequest(
        symbol=SYMBOL, side=OrderSide.BUY, type=OrderType.MARKET, quantity=Decimal(100)
    )
    outcome = await services.orders.place_order(services.demo_user_id, request)
    assert outcome.order is not None, outcome.errors
    return outcome.order


async def filled(services: Services, order_id: int) -> None:
    async def check() -> bool:
        async with services.sessions() as session:
            row = await session.get(models.Order, order_id)
        return row is not None and row.status == "FILLED"

    await eventually(check)


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[Services]:
    async with open_services(make_settings(database_url)) as services:
        await leading(services)
        yield services


async def test_a_streamed_fill_is_timed_and_the_matcher_catches_up(running: Services) -> None:
    # given a quote, and a market buy the matcher has in its book
    await running.ingestor.ingest([tick("1500.00")])
    order = await market_buy(running)
    await asyncio.sleep(0.2)
    # when the next tick arrives
    await running.ingestor.ingest([tick("1501.00")])
    await filled(running, order.id)
    # then the fill is timed from that tick's arrival, and nothing waits any more
    activity = running.activity
    assert activity.fills == 1
    assert activity.fill_latency.count == 1
    assert 0 < activity.fill_latency.sum < 5
    assert activity.matcher.backlog is not None  # subscribed: it leads
    assert activity.matcher.waiting() == 0
    assert activity.matcher.lag(time.monotonic()) == 0.0
    assert activity.matcher.idle(time.monotonic()) < 5  # it took that tick moments ago
    assert activity.matcher_overflows == 0


@pytest.fixture
async def pg_database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with sql_database(request, "postgresql") as url:
        yield url


@pytest.mark.postgres
async def test_a_matcher_stuck_on_a_fill_shows_its_lag_and_backlog(pg_database_url: str) -> None:
    async with open_services(make_settings(pg_database_url)) as services:
        await leading(services)
        await services.ingestor.ingest([tick("1500.00")])
        order = await market_buy(services)
        await asyncio.sleep(0.2)
        progress = services.activity.matcher
        # given another transaction holding the order's row
        dsn = make_url(pg_database_url).set(drivername="postgresql")
        blocker = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            locking = blocker.transaction()
            await locking.start()
            await blocker.execute("SELECT id FROM orders WHERE id = $1 FOR UPDATE", order.id)
            # when a tick for it arrives (its fill waits for the lock) and more follow
            await services.ingestor.ingest([tick("1501.00")])
            await services.ingestor.ingest([tick("1502.00"), tick("1503.00")])
            await asyncio.sleep(0.5)
            # then the matcher is seen behind by at least that long, with what waits
            assert progress.lag(time.monotonic()) >= 0.5
            assert progress.waiting() == 3  # the tick in hand and the two behind it
            await locking.rollback()
        finally:
            await blocker.close()
        # and once the lock is gone the fill lands, timed from its tick's arrival
        await filled(services, order.id)

        async def caught_up() -> bool:
            return progress.waiting() == 0

        await eventually(caught_up)
        assert progress.lag(time.monotonic()) == 0.0
        assert services.activity.fill_latency.count == 1
        assert services.activity.fill_latency.sum >= 0.5
