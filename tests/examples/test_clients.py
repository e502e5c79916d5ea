"""examples/: the Python (gql) and Node (graphql-ws) clients against a real server.

Each client runs as a subprocess against a live uvicorn server on a fresh SQLite
database (no simulated feed); the test feeds BTCUSDT ticks while the client is
subscribed, then checks the JSON lines the client printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from graphql_api.services import Services
from storage import models
from storage.timeseries import Tick
from tests.conftest import live_server, make_settings, sql_database
from tests.support.npm import json_lines_of, npm_ci

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PYTHON_CLIENT = ROOT / "examples" / "python_client.py"
NODE_DIR = ROOT / "examples" / "node"
NODE_CLIENT = NODE_DIR / "client.mjs"
CLIENT_TIMEOUT = 60.0
SYMBOL = "BTCUSDT"

Json = dict[str, Any]


@dataclass
class Feed:
    """Prices of the ticks fed so far."""

    prices: list[str]


@pytest.fixture(scope="session")
def node_client() -> Path:
    """examples/node with its dependencies installed (npm ci from the lockfile)."""
    npm_ci(NODE_DIR, needed_for="the Node example")
    return NODE_CLIENT


@pytest.fixture
async def sqlite_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Starlette]]:
    """A live server on a fresh copy of the seeded SQLite template, MARKET_FEED=none."""
    async with (
        sql_database(request, "sqlite") as url,
        live_server(make_settings(url)) as running,
    ):
        yield running


@contextlib.asynccontextmanager
async def feeding_ticks(services: Services, interval: float = 0.2) -> AsyncIterator[Feed]:
    """Ingest a new BTCUSDT tick every ``interval`` seconds until the block ends."""
    feed = Feed(prices=[])

    async def run() -> None:
        price = Decimal("95000.00")
        while True:
            price += Decimal("1.25")
            now = datetime.now(UTC)
            feed.prices.append(str(price))
            await services.ingestor.ingest([Tick(SYMBOL, now, price, price, price, Decimal(1))])
            await asyncio.sleep(interval)

    task = asyncio.create_task(run(), name="example-tick-feed")
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_client(command: Sequence[str]) -> list[Json]:
    return await json_lines_of(command, cwd=ROOT, timeout=CLIENT_TIMEOUT)


def by_event(lines: list[Json], event: str) -> list[Json]:
    return [line for line in lines if line["event"] == event]


def assert_ticks(lines: list[Json], feed: Feed, count: int) -> None:
    ticks = [line["tick"] for line in by_event(lines, "tick")]
    assert len(ticks) == count, lines
    assert {tick["symbol"] for tick in ticks} == {SYMBOL}
    assert all(tick["last"] in feed.prices for tick in ticks), (ticks, feed.prices)
    assert all(datetime.fromisoformat(tick["time"]).tzinfo is not None for tick in ticks)
    assert by_event(lines, "done") == [{"event": "done", "ticks": count}]
    assert lines[-1]["event"] == "done"


def symbol_codes(lines: list[Json]) -> set[str]:
    [listing] = by_event(lines, "symbols")
    return {symbol["code"] for symbol in listing["symbols"]}


async def test_python_client_queries_places_an_order_and_streams_ticks(
    sqlite_server: tuple[str, Starlette],
) -> None:
    address, app = sqlite_server
    url = f"http://{address}/graphql"
    command = [sys.executable, str(PYTHON_CLIENT), "--url", url, "--ticks", "2", "--first", "50"]
    async with feeding_ticks(app.state.services) as feed:
        lines = await run_client(command)

    # the query listed the seeded symbols
    assert {"600519.SH", SYMBOL} <= symbol_codes(lines)
    # the mutation placed a resting LIMIT BUY
    [placed] = by_event(lines, "order")
    assert placed["userErrors"] == []
    order = placed["order"]
    assert order["status"] == "NEW", order
    assert (order["side"], order["type"], order["quantity"]) == ("BUY", "LIMIT", "100")
    assert order["symbol"] == {"code": "600519.SH"}
    assert Decimal(order["limitPrice"]) > 0
    # and the server stored it for the demo user the client logged in as
    assert by_event(lines, "login") == [{"event": "login", "username": "demo"}]
    services: Services = app.state.services
    async with services.sessions() as session:
        stored = await session.get(models.Order, int(order["id"]))
    assert stored is not None
    assert (stored.status, stored.symbol_code, stored.user_id) == (
        "NEW",
        "600519.SH",
        services.demo_user_id,
    )
    # the subscription delivered live ticks of the subscribed symbol, then the client exited
    assert_ticks(lines, feed, 2)


async def test_node_client_queries_and_streams_ticks(
    node_client: Path, sqlite_server: tuple[str, Starlette]
) -> None:
    address, app = sqlite_server
    node = shutil.which("node")
    assert node is not None
    command = [node, str(node_client), f"http://{address}/graphql", "2", SYMBOL]
    async with feeding_ticks(app.state.services) as feed:
        lines = await run_client(command)

    assert {"600519.SH", SYMBOL} <= symbol_codes(lines)
    assert_ticks(lines, feed, 2)


async def test_node_sse_client_streams_ticks_without_websockets(
    node_client: Path, sqlite_server: tuple[str, Starlette]
) -> None:
    """GraphQL over Server-Sent Events with the npm graphql-sse client (proxies that
    block WebSockets)."""
    address, app = sqlite_server
    node = shutil.which("node")
    assert node is not None
    command = [node, str(node_client.parent / "sse.mjs"), f"http://{address}/graphql", "2", SYMBOL]
    async with feeding_ticks(app.state.services) as feed:
        lines = await run_client(command)

    assert_ticks(lines, feed, 2)
