"""Alerts and webhooks on a two-process cluster (PostgreSQL + Redis), across a failover.

Exactly one process evaluates alerts (``alert-engine`` leadership) and one posts
webhooks (``webhooks``); when the alert engine's leader stops, the other process
takes over. Each firing must be stored once, reach a subscriber on the other
process once, and be POSTed to the webhook receiver (at least once: one delivery id
per firing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.platform.settings import DEFAULT_DEMO_PASSWORD
from storage import models
from storage.engine import create_engine
from tests.api.test_webhooks import Receiver, receiving
from tests.conftest import postgres_database
from tests.e2e.test_strategy_cluster import create_feed_user, eventually, token
from tests.support.graphql import WsClient, execute
from tests.support.processes import ServerProcess, server_processes

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

FEED_PASSWORD = "feeder-password"
CREATE_ALERT = """
mutation {
  createAlert(input: {symbol: "BTCUSDT", kind: PRICE_CROSSES_ABOVE, level: "100000",
                      mode: REARM}) { alert { id } userErrors { code } }
}
"""
REGISTER = """
mutation ($url: String!) {
  registerWebhook(url: $url, events: [ALERT_FIRED]) { webhook { id } userErrors { code } }
}
"""
INGEST = """
mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) { accepted userErrors { code } } }
"""
SUBSCRIBE = "subscription { alerts { id alertId price } }"


@pytest.fixture
async def cluster_database(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


@pytest.fixture
async def database(cluster_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(cluster_database)
    try:
        yield engine
    finally:
        await engine.dispose()


def ticks(start: datetime, *prices: str) -> list[dict[str, str]]:
    return [
        {
            "symbol": "BTCUSDT",
            "time": (start + timedelta(seconds=i)).isoformat(),
            "last": price,
            "volume": "0.1",
        }
        for i, price in enumerate(prices)
    ]


async def test_each_firing_is_stored_delivered_and_posted_once_across_a_failover(
    cluster_database: str, redis_url: str, database: AsyncEngine
) -> None:
    env = {
        "DATABASE_URL": cluster_database,
        "BROADCAST_URL": redis_url,
        "MARKET_FEED": "none",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "WEBHOOK_BACKOFF_SECONDS": "0.2",
    }
    create_feed_user(env)
    async with receiving(Receiver()) as receiver:
        with server_processes(2, env) as servers:
            async with servers_clients(servers[0]) as (demo, feed):
                await execute(feed, INGEST, {"ticks": ticks(start := _start(), "99000")})
                created = (await execute(demo, CREATE_ALERT))["createAlert"]
                alert_id = created["alert"]["id"]
                registered = (await execute(demo, REGISTER, {"url": receiver.url}))[
                    "registerWebhook"
                ]
                assert registered["userErrors"] == []
            leader, follower = await _leader_and_follower(database, servers)
            await asyncio.sleep(1.0)  # the leader's engine indexes the alert
            async with servers_clients(follower) as (demo, feed):
                ws = await WsClient.open(
                    follower.ws, payload={"authorization": demo.headers["authorization"]}
                )
                try:
                    await ws.subscribe(SUBSCRIBE)
                    await asyncio.sleep(0.5)  # let the subscription attach
                    # when the price crosses 100000 while the first leader evaluates
                    await execute(
                        feed, INGEST, {"ticks": ticks(start + timedelta(seconds=1), "100100")}
                    )
                    first = (await ws.next_data(timeout=30))["alerts"]
                    assert (first["alertId"], first["price"]) == (alert_id, "100100.00")
                    # and the leader stops, and the price crosses again
                    await asyncio.to_thread(leader.stop)  # the receiver keeps answering
                    await asyncio.sleep(3)  # the follower wins the election, indexes it
                    await execute(
                        feed,
                        INGEST,
                        {"ticks": ticks(start + timedelta(seconds=2), "99500", "100200")},
                    )
                    second = (await ws.next_data(timeout=30))["alerts"]
                    assert (second["alertId"], second["price"]) == (alert_id, "100200.00")
                    # then nothing is delivered twice
                    with pytest.raises(TimeoutError):
                        await ws.next_data(timeout=3)
                finally:
                    await ws.close()

                async def both_posted() -> bool:
                    return len(receiver.received) >= 2

                await eventually(both_posted, "both firings POSTed")
    async with database.connect() as connection:
        stored = await connection.scalar(
            select(func.count())
            .select_from(models.AlertFiring)
            .where(models.AlertFiring.alert_id == int(alert_id))
        )
    assert stored == 2
    # at least once: a POST cut off by the leader's shutdown is posted again, with the
    # same delivery id, for the receiver to handle once
    posted = {
        (headers["x-quantgraph-delivery"], json.loads(body)["alertFiring"]["price"])
        for headers, body in receiver.received
    }
    assert sorted(price for _, price in posted) == ["100100", "100200"]


def _start() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=30)


@contextlib.asynccontextmanager
async def servers_clients(
    server: ServerProcess,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The demo user's and the feed user's HTTP clients on one server process."""
    async with (
        httpx.AsyncClient(base_url=server.http) as demo,
        httpx.AsyncClient(base_url=server.http) as feed,
    ):
        demo_token = await token(demo, "demo", DEFAULT_DEMO_PASSWORD)
        demo.headers["authorization"] = f"Bearer {demo_token}"
        feed.headers["authorization"] = f"Bearer {await token(feed, 'feeder', FEED_PASSWORD)}"
        yield demo, feed


async def _leader_and_follower(
    database: AsyncEngine, servers: list[ServerProcess]
) -> tuple[ServerProcess, ServerProcess]:
    async def elected() -> bool:
        async with database.connect() as connection:
            holder = await connection.scalar(
                select(models.LeaderLease.holder).where(models.LeaderLease.name == "alert-engine")
            )
        return holder is not None

    await eventually(elected, "an alert-engine leader")
    async with database.connect() as connection:
        holder = await connection.scalar(
            select(models.LeaderLease.holder).where(models.LeaderLease.name == "alert-engine")
        )
    assert holder is not None
    pid = int(holder.rsplit(":", 1)[1])
    by_pid = {server.process.pid: server for server in servers if server.process is not None}
    leader = by_pid[pid]
    follower = next(server for server in servers if server is not leader)
    return leader, follower
