"""A live strategy on a two-process cluster (PostgreSQL + Redis), across a leader failover.

Needs the strategy engine wired into the runtime under
``Leadership(engine, "strategy-engine")``: exactly one process evaluates bars,
and when it stops the other takes over from ``last_bar_at``. Each signal must
be stored once and delivered to a subscriber once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.platform.settings import DEFAULT_DEMO_PASSWORD
from storage import models
from storage.engine import create_engine
from storage.timeseries import KlineInterval
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import postgres_database
from tests.support.graphql import WsClient, execute
from tests.support.processes import ServerProcess, server_processes

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

FEED_PASSWORD = "feeder-password"
CLOSES = [10, 9, 8, 7, 6, 9, 10, 8, 7, 8]  # SMA(2)/SMA(3): BUY on bar 5, SELL on bar 8

MUTATION_LOGIN = """
mutation ($u: String!, $p: String!) {
  login(username: $u, password: $p) { tokens { accessToken } userErrors { code } }
}
"""
MUTATION_CREATE = """
mutation {
  createStrategy(input: {name: "cluster cross", kind: SMA_CROSS, symbol: "BTCUSDT",
                         interval: MINUTE_1, parameters: {fast: 2, slow: 3}}) { strategy { id } }
}
"""
MUTATION_START = "mutation ($id: ID!) { startStrategy(id: $id) { userErrors { code } } }"
MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) { accepted userErrors { code } } }
"""
SUBSCRIPTION_SIGNALS = "subscription { signals { side barTime reason } }"


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


def create_feed_user(env: dict[str, str]) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "graphql_api.server.cli", "create-user", "feeder"),
            *("--role", "FEED", "--password-stdin"),
        ],
        input=FEED_PASSWORD + "\n",
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )


async def token(http: httpx.AsyncClient, username: str, password: str) -> str:
    data = await execute(http, MUTATION_LOGIN, {"u": username, "p": password})
    value: str = data["login"]["tokens"]["accessToken"]
    return value


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)


def bar_ticks(base: datetime, index: int) -> list[dict[str, str]]:
    start = base + timedelta(minutes=index)
    ticks = []
    for second, level in ((5, CLOSES[index] + 1), (45, CLOSES[index])):
        ticks.append(
            {
                "symbol": "BTCUSDT",
                "time": (start + timedelta(seconds=second)).isoformat(),
                "last": str(Decimal(95_000 + 10 * level).quantize(Decimal("0.01"))),
                "volume": "0.1",
            }
        )
    return ticks


async def test_each_signal_is_emitted_once_across_a_failover(
    cluster_database: str, redis_url: str, database: AsyncEngine
) -> None:
    env = {"DATABASE_URL": cluster_database, "BROADCAST_URL": redis_url, "MARKET_FEED": "none"}
    create_feed_user(env)
    with server_processes(2, env) as servers:
        # given a started strategy and the process that leads the strategy engine
        async with httpx.AsyncClient(base_url=servers[0].http) as http:
            http.headers["authorization"] = (
                f"Bearer {await token(http, 'demo', DEFAULT_DEMO_PASSWORD)}"
            )
            created = await execute(http, MUTATION_CREATE)
            strategy_id = created["createStrategy"]["strategy"]["id"]
            started = await execute(http, MUTATION_START, {"id": strategy_id})
            assert started["startStrategy"]["userErrors"] == []

        async def strategy_live() -> bool:
            async with database.connect() as connection:
                row = (
                    await connection.execute(
                        select(models.Strategy.last_bar_at).where(
                            models.Strategy.id == int(strategy_id)
                        )
                    )
                ).first()
            return row is not None and row.last_bar_at is not None

        await eventually(strategy_live, "the engine picks up the strategy")
        leader, follower = await _leader_and_follower(database, servers)
        # and a subscriber on the follower
        async with httpx.AsyncClient(base_url=follower.http) as feed:
            feed.headers["authorization"] = f"Bearer {await token(feed, 'feeder', FEED_PASSWORD)}"
            demo_token = await token(feed, "demo", DEFAULT_DEMO_PASSWORD)
            ws = await WsClient.open(follower.ws, payload={"authorization": f"Bearer {demo_token}"})
            try:
                await ws.subscribe(SUBSCRIPTION_SIGNALS)
                await asyncio.sleep(0.5)  # let the subscription attach (another process)
                base = floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1) - timedelta(
                    minutes=len(CLOSES) + 2
                )
                # when the bars up to the BUY are ingested
                for index in range(7):
                    await execute(feed, MUTATION_INGEST, {"ticks": bar_ticks(base, index)})
                first = (await ws.next_data(timeout=30))["signals"]
                assert (first["side"], first["reason"]) == ("BUY", "SMA(2) crossed above SMA(3)")
                # and the leader stops, and the rest arrives while the follower takes over
                leader.stop()
                for index in range(7, len(CLOSES)):
                    await execute(feed, MUTATION_INGEST, {"ticks": bar_ticks(base, index)})
                second = (await ws.next_data(timeout=30))["signals"]
                assert (second["side"], second["reason"]) == ("SELL", "SMA(2) crossed below SMA(3)")
                # then no event is delivered twice
                with pytest.raises(TimeoutError):
                    await ws.next_data(timeout=3)
            finally:
                await ws.close()
    # and the database holds exactly one row per signal
    async with database.connect() as connection:
        rows = (
            await connection.execute(
                select(models.Signal.side, models.Signal.bar_time)
                .where(models.Signal.strategy_id == int(strategy_id))
                .order_by(models.Signal.bar_time)
            )
        ).all()
    assert [(side, time) for side, time in rows] == [
        ("BUY", base + timedelta(minutes=5)),
        ("SELL", base + timedelta(minutes=8)),
    ]


async def _leader_and_follower(
    database: AsyncEngine, servers: list[ServerProcess]
) -> tuple[ServerProcess, ServerProcess]:
    async with database.connect() as connection:
        holder = await connection.scalar(
            select(models.LeaderLease.holder).where(models.LeaderLease.name == "strategy-engine")
        )
    assert holder is not None, "no strategy-engine leader: is the engine wired into the runtime?"
    pid = int(holder.rsplit(":", 1)[1])
    by_pid = {server.process.pid: server for server in servers if server.process is not None}
    leader = by_pid[pid]
    follower = next(server for server in servers if server is not leader)
    return leader, follower
