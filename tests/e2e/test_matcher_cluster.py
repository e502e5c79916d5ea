"""Exactly-once fills with two server processes, and failover when the leader dies."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from graphql_api.platform.settings import DEFAULT_DEMO_PASSWORD
from graphql_api.trading.shards import shard_of
from tests.conftest import postgres_database
from tests.e2e.test_two_processes import MUTATION_INGEST, create_user, login
from tests.support.graphql import execute
from tests.support.processes import server_processes

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } userErrors { code } }
}
"""


@pytest.fixture
async def cluster_database(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def ingest(http: httpx.AsyncClient, price: str) -> None:
    body = {
        "ticks": [
            {
                "symbol": "XRPUSDT",
                "time": datetime.now(UTC).isoformat(),
                "last": price,
                "bid": price,
                "ask": price,
                "volume": "100000",
            }
        ]
    }
    data = await execute(http, MUTATION_INGEST, body)
    assert data["ingestTicks"]["accepted"] == 1


async def place_many(clients: list[httpx.AsyncClient], count: int) -> list[int]:
    ids = []
    for n in range(count):
        data = await execute(
            clients[n % len(clients)],
            PLACE,
            {"input": {"symbol": "XRPUSDT", "side": "BUY", "type": "MARKET", "quantity": "10.0"}},
        )
        assert data["placeOrder"]["order"]["status"] == "NEW", data
        ids.append(int(data["placeOrder"]["order"]["id"]))
    return ids


async def wait_all_filled(database: str, ids: list[int], timeout: float = 20) -> None:
    connection = await asyncpg.connect(dsn(database))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            statuses = await connection.fetch(
                "SELECT status FROM orders WHERE id = ANY($1::bigint[])", ids
            )
            if all(row["status"] == "FILLED" for row in statuses):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not all filled: {[r['status'] for r in statuses]}")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def assert_filled_exactly_once(database: str, ids: list[int]) -> None:
    connection = await asyncpg.connect(dsn(database))
    try:
        rows = await connection.fetch(
            "SELECT o.id, o.quantity, o.filled_quantity, count(t.id) AS fills, "
            "coalesce(sum(t.quantity), 0) AS traded FROM orders o LEFT JOIN trades t "
            "ON t.order_id = o.id WHERE o.id = ANY($1::bigint[]) GROUP BY o.id",
            ids,
        )
    finally:
        await connection.close()
    assert len(rows) == len(ids)
    for row in rows:
        assert row["fills"] == 1, dict(row)
        assert row["traded"] == row["quantity"] == row["filled_quantity"] == Decimal("10.0")


async def leader_pid(database: str) -> int:
    connection = await asyncpg.connect(dsn(database))
    try:
        holder = await connection.fetchval(
            "SELECT holder FROM leader_leases WHERE name = 'matcher'"
        )
    finally:
        await connection.close()
    return int(str(holder).rsplit(":", 1)[1])


async def test_two_processes_fill_each_order_exactly_once_and_fail_over(
    cluster_database: str, redis_url: str
) -> None:
    env = {
        "DATABASE_URL": cluster_database,
        "BROADCAST_URL": redis_url,
        "MARKET_FEED": "none",
        "LEADER_LEASE_SECONDS": "2",
    }
    create_user(env, "feeder", "FEED")
    with server_processes(2, env) as servers:
        clients = [httpx.AsyncClient(base_url=s.http) for s in servers]
        try:
            feed = httpx.AsyncClient(base_url=servers[0].http)
            feed.headers["authorization"] = f"Bearer {await login(feed, 'feeder')}"
            for client in clients:
                token = await login(client, "demo", DEFAULT_DEMO_PASSWORD)
                client.headers["authorization"] = f"Bearer {token}"
            # given a quote, then orders placed through both processes
            await ingest(feed, "2.1500")
            first = await place_many(clients, 30)
            await asyncio.sleep(0.5)
            # when one tick arrives
            await ingest(feed, "2.1600")
            # then every order fills exactly once, whichever process matched it
            await wait_all_filled(cluster_database, first)
            await assert_filled_exactly_once(cluster_database, first)

            # when the leader dies without a goodbye
            pid = await leader_pid(cluster_database)
            leader = next(s for s in servers if s.process and s.process.pid == pid)
            survivor = next(s for s in servers if s is not leader)
            leader.stop(signal.SIGKILL)
            survivor_client = clients[servers.index(survivor)]
            survivor_feed = httpx.AsyncClient(base_url=survivor.http, headers=feed.headers)
            await asyncio.sleep(3)  # PostgreSQL drops the dead session's advisory lock
            # then the survivor takes over and fills new orders, still exactly once
            second = await place_many([survivor_client], 10)
            await asyncio.sleep(0.5)
            await ingest(survivor_feed, "2.1700")
            await wait_all_filled(cluster_database, second)
            await assert_filled_exactly_once(cluster_database, first + second)
            assert await leader_pid(cluster_database) == survivor.process.pid  # type: ignore[union-attr]
            await survivor_feed.aclose()
            await feed.aclose()
        finally:
            for client in clients:
                await client.aclose()


async def ingest_at(http: httpx.AsyncClient, symbol: str, price: str) -> None:
    tick = {
        "symbol": symbol,
        "time": datetime.now(UTC).isoformat(),
        "last": price,
        "bid": price,
        "ask": price,
        "volume": "100000",
    }
    data = await execute(http, MUTATION_INGEST, {"ticks": [tick]})
    assert data["ingestTicks"]["accepted"] == 1


async def place_on(
    clients: list[httpx.AsyncClient], symbol: str, quantity: str, count: int
) -> list[int]:
    ids = []
    for n in range(count):
        order = {"symbol": symbol, "side": "BUY", "type": "MARKET", "quantity": quantity}
        data = await execute(clients[n % len(clients)], PLACE, {"input": order})
        assert data["placeOrder"]["order"]["status"] == "NEW", data
        ids.append(int(data["placeOrder"]["order"]["id"]))
    return ids


async def shard_holders(database: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn(database))
    try:
        rows = await connection.fetch(
            "SELECT name, holder FROM leader_leases WHERE name LIKE 'matcher-%'"
        )
    finally:
        await connection.close()
    return {row["name"]: int(str(row["holder"]).rsplit(":", 1)[1]) for row in rows}


async def assert_each_filled_once(database: str, ids: list[int]) -> None:
    connection = await asyncpg.connect(dsn(database))
    try:
        rows = await connection.fetch(
            "SELECT o.id, o.quantity, o.filled_quantity, count(t.id) AS fills, "
            "coalesce(sum(t.quantity), 0) AS traded FROM orders o LEFT JOIN trades t "
            "ON t.order_id = o.id WHERE o.id = ANY($1::bigint[]) GROUP BY o.id",
            ids,
        )
    finally:
        await connection.close()
    assert len(rows) == len(ids)
    for row in rows:
        assert row["fills"] == 1, dict(row)
        assert row["traded"] == row["quantity"] == row["filled_quantity"], dict(row)


async def test_matcher_shards_spread_over_two_processes_and_move_when_one_dies(
    cluster_database: str, redis_url: str
) -> None:
    # XRPUSDT hashes to shard 0 of 2 and BTCUSDT to shard 1 (graphql_api.trading.shards)
    assert (shard_of("XRPUSDT", 2), shard_of("BTCUSDT", 2)) == (0, 1)
    env = {
        "DATABASE_URL": cluster_database,
        "BROADCAST_URL": redis_url,
        "MARKET_FEED": "none",
        "LEADER_LEASE_SECONDS": "2",
        "MATCHER_SHARDS": "2",
    }
    create_user(env, "feeder", "FEED")
    with server_processes(2, env) as servers:
        clients = [httpx.AsyncClient(base_url=s.http) for s in servers]
        feed = httpx.AsyncClient(base_url=servers[0].http)
        try:
            feed.headers["authorization"] = f"Bearer {await login(feed, 'feeder')}"
            for client in clients:
                token = await login(client, "demo", DEFAULT_DEMO_PASSWORD)
                client.headers["authorization"] = f"Bearer {token}"
            # the two shards end up led by the two processes, one each
            pids = {s.process.pid for s in servers if s.process}
            deadline = asyncio.get_running_loop().time() + 20
            while set((holders := await shard_holders(cluster_database)).values()) != pids:
                assert asyncio.get_running_loop().time() < deadline, holders
                await asyncio.sleep(0.2)
            await ingest_at(feed, "XRPUSDT", "2.1500")
            await ingest_at(feed, "BTCUSDT", "95000.00")
            first = await place_on(clients, "XRPUSDT", "10.0", 10)
            first += await place_on(clients, "BTCUSDT", "0.001", 10)
            await asyncio.sleep(0.5)
            await ingest_at(feed, "XRPUSDT", "2.1600")
            await ingest_at(feed, "BTCUSDT", "95010.00")
            await wait_all_filled(cluster_database, first)
            await assert_each_filled_once(cluster_database, first)

            # when the leader of BTCUSDT's shard dies, the survivor leads both shards
            victim_pid = holders["matcher-1"]
            victim = next(s for s in servers if s.process and s.process.pid == victim_pid)
            survivor = next(s for s in servers if s is not victim)
            victim.stop(signal.SIGKILL)
            survivor_client = clients[servers.index(survivor)]
            survivor_feed = httpx.AsyncClient(base_url=survivor.http, headers=feed.headers)
            try:
                deadline = asyncio.get_running_loop().time() + 20
                assert survivor.process is not None
                while set((await shard_holders(cluster_database)).values()) != {
                    survivor.process.pid
                }:
                    assert asyncio.get_running_loop().time() < deadline, "no takeover"
                    await asyncio.sleep(0.2)
                second = await place_on([survivor_client], "BTCUSDT", "0.001", 5)
                second += await place_on([survivor_client], "XRPUSDT", "10.0", 5)
                await asyncio.sleep(0.5)
                await ingest_at(survivor_feed, "BTCUSDT", "95020.00")
                await ingest_at(survivor_feed, "XRPUSDT", "2.1700")
                await wait_all_filled(cluster_database, second)
                await assert_each_filled_once(cluster_database, first + second)
            finally:
                await survivor_feed.aclose()
        finally:
            await feed.aclose()
            for client in clients:
                await client.aclose()
