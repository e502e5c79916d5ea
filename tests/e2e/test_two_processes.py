"""Two real server processes on one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import postgres_database
from tests.support.graphql import WsClient, execute
from tests.support.processes import ServerProcess, server_processes

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

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
    with server_processes(2, env) as (a, b):
        await _exchange(a, b)


async def _exchange(a: ServerProcess, b: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=a.http) as http_a:
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
