"""Redis goes away and comes back: two real server processes keep serving and
their subscribers get ticks again, without reconnecting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import postgres_database
from tests.e2e.test_two_processes import create_user, login
from tests.support.graphql import WsClient, execute
from tests.support.processes import server_processes
from tests.support.servers import RedisProcess

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

INGEST = """
mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) { accepted userErrors { code } } }
"""
QUOTE = """
query { quote(symbol: "BTCUSDT") { symbol last } symbols(first: 3) { edges { node { code } } } }
"""
TICKS = 'subscription { ticks(symbols: ["BTCUSDT"]) { symbol last } }'
PRICES = (f"{95000 + n / 100:.2f}" for n in itertools.count(1))


@pytest.fixture
async def cluster_database(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


async def ingest(http: httpx.AsyncClient, last: str, timeout: float = 15) -> dict[str, Any]:
    body = {"ticks": [{"symbol": "BTCUSDT", "time": datetime.now(UTC).isoformat(), "last": last}]}
    data = await asyncio.wait_for(execute(http, INGEST, body), timeout)
    result: dict[str, Any] = data["ingestTicks"]
    return result


async def delivered(
    http: httpx.AsyncClient, subscribers: list[WsClient], within: float
) -> list[str]:
    """Ingest fresh prices (one a second) until every subscriber has received one of
    them; the prices they got. Covers subscriptions still attaching or resubscribing."""
    sent: set[str] = set()
    got: list[str | None] = [None] * len(subscribers)

    async def watch(index: int, client: WsClient) -> None:
        while got[index] is None:
            last = (await client.next_data(timeout=within))["ticks"]["last"]
            if last in sent:
                got[index] = last

    watchers = [asyncio.create_task(watch(i, c)) for i, c in enumerate(subscribers)]
    try:
        async with asyncio.timeout(within):
            while not all(watcher.done() for watcher in watchers):
                price = next(PRICES)
                sent.add(price)
                assert (await ingest(http, price))["accepted"] == 1
                await asyncio.wait(watchers, timeout=1)
        for watcher in watchers:
            watcher.result()
    finally:
        for watcher in watchers:
            watcher.cancel()
    return [value for value in got if value is not None]


async def test_delivery_resumes_on_both_processes_after_redis_restarts(
    cluster_database: str,
) -> None:
    redis = RedisProcess()
    redis.start()
    try:
        env = {
            "DATABASE_URL": cluster_database,
            "BROADCAST_URL": redis.url,
            "MARKET_FEED": "none",
            "TICK_FLUSH_INTERVAL_MS": "5",
        }
        await asyncio.to_thread(create_user, env, "feeder", "FEED")
        with server_processes(2, env) as (a, b):
            async with (
                httpx.AsyncClient(base_url=a.http, timeout=20) as http_a,
                httpx.AsyncClient(base_url=b.http, timeout=20) as http_b,
            ):
                http_a.headers["authorization"] = f"Bearer {await login(http_a, 'feeder')}"
                on_a = await WsClient.open(a.ws)
                on_b = await WsClient.open(b.ws)
                try:
                    for client in (on_a, on_b):
                        await client.subscribe(TICKS)
                    # given delivery through Redis to both processes
                    assert len(await delivered(http_a, [on_a, on_b], within=15)) == 2

                    # when Redis goes away
                    await asyncio.to_thread(redis.stop)
                    # then queries still answer on both processes
                    for http in (http_a, http_b):
                        data = await execute(http, QUOTE)
                        assert data["quote"]["symbol"] == "BTCUSDT"
                        assert len(data["symbols"]["edges"]) == 3
                    # and ingesting still stores the tick (publishing is best effort)
                    while_down = next(PRICES)
                    assert (await ingest(http_a, while_down))["accepted"] == 1
                    quote = await execute(http_b, QUOTE)
                    assert quote["quote"]["last"] == while_down

                    # when Redis is back on the same port
                    await asyncio.to_thread(redis.start)
                    # then both processes deliver again, on the same sockets
                    assert len(await delivered(http_a, [on_a, on_b], within=20)) == 2
                finally:
                    await on_a.close()
                    await on_b.close()
            for process in (a, b):
                assert process.process is not None and process.process.poll() is None
    finally:
        await asyncio.to_thread(redis.stop)
