"""Two real server processes on one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import postgres_database
from tests.support.graphql import WsClient, execute
from tests.support.processes import ServerProcess, server_processes

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "feeder-password"

MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) { accepted userErrors { code } } }
"""


@pytest.fixture
async def cluster_database(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


def ingest_body(last: str) -> dict[str, object]:
    return {
        "ticks": [
            {
                "symbol": "BTCUSDT",
                "time": datetime.now(UTC).isoformat(),
                "last": last,
                "volume": "0.1",
            }
        ]
    }


async def test_tick_ingested_on_one_process_reaches_a_subscriber_on_another(
    cluster_database: str, redis_url: str
) -> None:
    env = {"DATABASE_URL": cluster_database, "BROADCAST_URL": redis_url, "MARKET_FEED": "none"}
    create_user(env, "feeder", "FEED")
    with server_processes(2, env) as (a, b):
        await _exchange(a, b)


def create_user(env: dict[str, str], username: str, role: str) -> None:
    """Through the real CLI, as an operator would."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "graphql_api.server.cli",
            "create-user",
            username,
            "--role",
            role,
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    data = await execute(
        http,
        "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) "
        "{ tokens { accessToken } userErrors { code } } }",
        {"u": username, "p": password},
    )
    token: str = data["login"]["tokens"]["accessToken"]
    return token


async def _exchange(a: ServerProcess, b: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=a.http) as http_a:
        http_a.headers["authorization"] = f"Bearer {await login(http_a, 'feeder')}"
        # given a first tick, so B's subscription starts with a snapshot
        first = await execute(http_a, MUTATION_INGEST, ingest_body("95000.00"))
        assert first["ingestTicks"]["accepted"] == 1
        ws = await WsClient.open(b.ws)
        try:
            await ws.subscribe('subscription { ticks(symbols: ["BTCUSDT"]) { last } }')
            snapshot = await ws.next_data()
            assert snapshot["ticks"]["last"] == "95000.00"
            # when A ingests a new tick
            await execute(http_a, MUTATION_INGEST, ingest_body("95123.45"))
            # then B's subscriber receives it through Redis
            live = await ws.next_data(timeout=10)
            assert live["ticks"]["last"] == "95123.45"
        finally:
            await ws.close()
    await asyncio.sleep(0)


async def test_a_watchlist_edited_on_one_process_is_followed_by_a_subscriber_on_another(
    cluster_database: str, redis_url: str
) -> None:
    env = {"DATABASE_URL": cluster_database, "BROADCAST_URL": redis_url, "MARKET_FEED": "none"}
    create_user(env, "feeder", "FEED")
    create_user(env, "trader", "TRADER")
    with server_processes(2, env) as (a, b):
        async with (
            httpx.AsyncClient(base_url=a.http) as feed,
            httpx.AsyncClient(base_url=a.http) as trader,
        ):
            feed.headers["authorization"] = f"Bearer {await login(feed, 'feeder')}"
            token = await login(trader, "trader")
            trader.headers["authorization"] = f"Bearer {token}"
            created = await execute(
                trader,
                'mutation { createWatchlist(name: "Crypto", symbols: ["ETHUSDT"]) '
                "{ watchlist { id } userErrors { code } } }",
            )
            watchlist_id = created["createWatchlist"]["watchlist"]["id"]
            ws = await WsClient.open(b.ws, payload={"authorization": f"Bearer {token}"})
            try:
                # given a subscriber on B
                await ws.subscribe(
                    "subscription ($id: ID!) { watchlistQuotes(id: $id) "
                    "{ symbol position quote { last } } }",
                    {"id": watchlist_id},
                )
                first = (await ws.next_data())["watchlistQuotes"]
                assert (first["symbol"], first["position"]) == ("ETHUSDT", 0)
                # when A adds a symbol, and then a tick of it arrives on A
                await execute(
                    trader,
                    "mutation ($id: ID!) { addToWatchlist(id: $id, symbols: "
                    '["BTCUSDT"], position: 0) { userErrors { code } } }',
                    {"id": watchlist_id},
                )
                added = [(await ws.next_data())["watchlistQuotes"] for _ in range(2)]
                assert [(q["symbol"], q["position"]) for q in added] == [
                    ("BTCUSDT", 0),
                    ("ETHUSDT", 1),
                ]
                await execute(feed, MUTATION_INGEST, ingest_body("95123.45"))
                live = (await ws.next_data())["watchlistQuotes"]
                # then B's subscription followed the edit and gets the new symbol's ticks
                assert (live["symbol"], live["quote"]) == ("BTCUSDT", {"last": "95123.45"})
                # and deleting the list on A completes it on B
                await execute(
                    trader,
                    "mutation ($id: ID!) { deleteWatchlist(id: $id) { userErrors { code } } }",
                    {"id": watchlist_id},
                )
                assert (await ws.receive())["type"] == "complete"
            finally:
                await ws.close()
