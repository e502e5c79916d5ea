"""What a client is told during a Redis or database outage is what was stored.

Each test stops and restarts the real dependency (a Redis or a PostgreSQL of
its own), so the pooled connections really go stale and the bus really drops
what was published while nobody listened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import select

from graphql_api.platform.resilience import as_service_unavailable
from graphql_api.realtime.channels import order_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.services import Services
from storage import models
from storage.timeseries import Tick
from tests.conftest import http_client, live_server, login_token, make_settings
from tests.support.graphql import Json, WsClient, post
from tests.support.restartable import RestartablePostgres
from tests.support.servers import RedisProcess

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } userErrors { code message } }
}
"""
CANCEL = """
mutation ($id: ID!) { cancelOrder(id: $id) { order { id status } userErrors { code } } }
"""
ORDER_UPDATES = "subscription { orderUpdates { id status } }"


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    process = RedisProcess()
    process.start()
    try:
        yield process
    finally:
        process.stop()


def limit_buy(client_id: str) -> Json:
    return {
        "input": {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "limitPrice": "94000.00",
            "clientOrderId": client_id,
        }
    }


async def quote(services: Services) -> None:
    """A market price, so limit orders pass the price band (and rest: no fill at 95000)."""
    price = Decimal("95000.00")
    tick = Tick("BTCUSDT", datetime.now(UTC), price, price, price, Decimal(1))
    await services.ingestor.ingest([tick])
    await asyncio.sleep(0.1)


async def place(http: httpx.AsyncClient, client_id: str) -> Json:
    body = await post(http, PLACE, limit_buy(client_id))
    assert "errors" not in body, body
    order: Json = body["data"]["placeOrder"]["order"]
    assert order is not None, body
    return order


async def stored(services: Services, ids: list[int]) -> dict[int, str]:
    async with services.sessions() as session:
        rows = await session.scalars(select(models.Order).where(models.Order.id.in_(ids)))
        return {row.id: row.status for row in rows}


async def updates_until(
    client: WsClient, expected: dict[str, str], timeout: float
) -> dict[str, str]:
    """Read orderUpdates until each expected id was last seen with its expected status."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while any(seen.get(key) != value for key, value in expected.items()):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"saw {seen}, expected {expected}"
        update = (await client.next_data(timeout=remaining))["orderUpdates"]
        seen[update["id"]] = update["status"]
    return seen


@pytest.mark.redis
async def test_orders_and_cancels_during_a_redis_outage_are_answered_and_announced_later(
    sqlite_url: str, redis: RedisProcess
) -> None:
    settings = make_settings(sqlite_url, BROADCAST_URL=redis.url)
    async with live_server(settings) as (address, app):
        services: Services = app.state.services
        token = await login_token(app)
        await quote(services)
        subscriber = await WsClient.open(
            f"ws://{address}/graphql", payload={"Authorization": f"Bearer {token}"}
        )
        try:
            await subscriber.subscribe(ORDER_UPDATES)
            async with http_client(app, token) as http:
                # given a live subscription, fed through Redis
                before = await place(http, "before")
                await updates_until(subscriber, {before["id"]: "NEW"}, timeout=10)

                # when Redis goes away, orders are placed and one is canceled
                await asyncio.to_thread(redis.stop)
                placed = [await place(http, f"during-{n}") for n in range(3)]
                body = await post(http, CANCEL, {"id": placed[0]["id"]})
                assert "errors" not in body, body
                canceled = body["data"]["cancelOrder"]["order"]

                # then every answer is the stored truth, and the events wait in the outbox
                told = {order["id"]: order["status"] for order in placed}
                told[canceled["id"]] = canceled["status"]
                assert told == {
                    placed[0]["id"]: "CANCELED",
                    placed[1]["id"]: "NEW",
                    placed[2]["id"]: "NEW",
                }
                truth = await stored(services, [int(key) for key in told])
                assert {str(key): value for key, value in truth.items()} == told
                assert await services.outbox.backlog() > 0

                # when Redis is back, the subscriber (same socket) gets what it missed
                await asyncio.to_thread(redis.start)
                seen = await updates_until(subscriber, told, timeout=30)
                assert {key: seen[key] for key in told} == told
                await until_backlog_empty(services)
        finally:
            await subscriber.close()


async def until_backlog_empty(services: Services, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while await services.outbox.backlog():
        assert time.monotonic() < deadline, "the outbox was not drained"
        await asyncio.sleep(0.1)


@pytest.mark.redis
async def test_a_restarted_redis_answers_every_first_call(
    sqlite_url: str, redis: RedisProcess
) -> None:
    settings = make_settings(sqlite_url, BROADCAST_URL=redis.url, RATE_LIMIT=True)
    async with live_server(settings) as (_address, app):
        services: Services = app.state.services
        hardening = app.state.hardening
        # given pooled connections in every Redis client (bus and shared state)
        await services.hub.publish("probe", "before")
        await services.hub.publish_many([("probe", "before")])
        assert hardening.redis is not None
        await hardening.redis.ping()

        # when Redis restarts while they sit idle
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(redis.start)

        # then the first call on each stale connection succeeds (reconnected)
        await services.hub.publish("probe", "after")
        await services.hub.publish_many([("probe", "after")])
        assert await hardening.redis.ping()
        failures_before = hardening.redis_breaker._failures
        async with http_client(app, await login_token(app)) as http:
            body = await post(http, "{ symbols(first: 1) { edges { node { code } } } }")
        assert "errors" not in body, body
        assert hardening.redis_breaker._failures == failures_before  # the limiter used Redis


def test_redis_connection_errors_are_service_unavailable() -> None:
    for error in (RedisConnectionError("Connection closed by server."), RedisTimeoutError()):
        unavailable = as_service_unavailable(error)
        assert unavailable is not None and unavailable.service == "redis"


@pytest.mark.postgres
async def test_order_updates_survive_a_database_outage_and_catch_up() -> None:
    with RestartablePostgres() as postgres:
        settings = make_settings(
            postgres.url,
            BREAKER_FAILURE_THRESHOLD=1,
            BREAKER_RESET_SECONDS=1,
            DB_CONNECT_TIMEOUT_SECONDS=2,
            MATCHER_ENABLED=False,
            STRATEGY_ENGINE_ENABLED=False,
        )
        async with live_server(settings) as (address, app):
            services: Services = app.state.services
            token = await login_token(app)
            await quote(services)
            subscriber = await WsClient.open(
                f"ws://{address}/graphql", payload={"Authorization": f"Bearer {token}"}
            )
            try:
                await subscriber.subscribe(ORDER_UPDATES)
                async with http_client(app, token) as http:
                    order = await place(http, "db-outage")
                    await updates_until(subscriber, {order["id"]: "NEW"}, timeout=10)

                    # when the database goes away and an event arrives meanwhile
                    postgres.stop()
                    await services.hub.publish(
                        order_channel(services.demo_user_id),
                        encode_id_event("order", int(order["id"]), status="NEW", version=0),
                    )
                    # then the subscription neither fails nor completes
                    with pytest.raises(TimeoutError):
                        await subscriber.receive(timeout=3)

                    # when it comes back and the order changes
                    postgres.start()
                    await until_ok(http)
                    body = await post(http, CANCEL, {"id": order["id"]})
                    assert "errors" not in body, body
                    told = body["data"]["cancelOrder"]["order"]["status"]

                    # then the same socket shows the order as stored
                    seen = await updates_until(subscriber, {order["id"]: "CANCELED"}, timeout=20)
                    truth = await stored(services, [int(order["id"])])
                    assert seen[order["id"]] == told == truth[int(order["id"])] == "CANCELED"
            finally:
                await subscriber.close()


async def until_ok(http: httpx.AsyncClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while "errors" in await post(http, "{ orders(first: 1) { edges { node { id } } } }"):
        assert time.monotonic() < deadline, "the database did not come back"
        await asyncio.sleep(0.2)
