"""Fills per second with one and with two server processes (issue 16's matcher shards).

A throwaway PostgreSQL and Redis. For each configuration, a fresh database gets
``--orders`` resting market buys on each of two symbols that fall on different
matcher shards (XRPUSDT on shard 0 of 2, BTCUSDT on shard 1), placed through the
real OrderService by one trader per symbol. Then 1 or 2 ``quantgraph serve`` processes start with
``MATCHER_SHARDS=2``, each pinned to its own core; with two, each leads one
shard. Once the shards are led and the books loaded, one ``ingestTicks`` request
carries a crossing tick for both symbols, and the clock runs until every order
is FILLED in the database. Fills/s is all the orders over that time.

    PYTHONPATH=. .venv/bin/python -m bench.matcher_processes [--orders 5000]

Both processes share the machine with PostgreSQL, which does much of the work,
so two processes on a two-core machine are not two machines: read the ratio as
what sharding buys here, not as a ceiling. Writes bench/results/matcher_processes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench.placement import add_traders
from bench.seed import create_database
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from graphql_api.trading.shards import shard_of
from storage.timeseries import Tick
from tests.support.processes import ServerProcess
from tests.support.servers import postgres_server, redis_server

RESULTS = Path(__file__).parent / "results" / "matcher_processes.json"
SYMBOLS = {
    "XRPUSDT": (Decimal("2.1500"), Decimal("10.0")),
    "BTCUSDT": (Decimal("95000.00"), Decimal("0.001")),
}
CLI = (sys.executable, "-m", "graphql_api.server.cli")
SECRET = "a-benchmark-secret-of-32-characters"
FEED_PASSWORD = "bench-feed-password"
INGEST = (
    "mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) "
    "{ accepted userErrors { code message } } }"
)
LOGIN = (
    "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) "
    "{ tokens { accessToken } } }"
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


async def place(database_url: str, redis_url: str, orders: int) -> None:
    """``orders`` market buys per symbol, resting until the next tick."""
    settings = Settings(
        DATABASE_URL=database_url,
        BROADCAST_URL=redis_url,
        MARKET_FEED="none",
        MATCHER_SHARDS="2",
        DEMO_START_CASH="100000000000",
        MAX_ORDER_NOTIONAL="100000000",
        JWT_SECRET=SECRET,
        STRATEGY_ENGINE_ENABLED="false",
    )
    async with open_services(settings) as services:
        # One trader per symbol: the shards then share no balance row (a single
        # account on both would serialise their fill transactions on its cash row).
        traders = await add_traders(services, len(SYMBOLS))
        now = datetime.now(UTC)
        await services.ingestor.ingest(
            [
                Tick(code, now, price, price, price, Decimal(10**9))
                for code, (price, _) in SYMBOLS.items()
            ]
        )
        for trader, (code, (_, quantity)) in zip(traders, SYMBOLS.items(), strict=True):
            request = OrderRequest(code, OrderSide.BUY, OrderType.MARKET, quantity)
            for first in range(0, orders, 100):
                batch = [request] * min(100, orders - first)
                for outcome in await services.orders.place_orders(trader, batch):
                    assert outcome.order is not None and outcome.order.status == "NEW", outcome


async def shard_holders(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT name, holder FROM leader_leases WHERE name LIKE 'matcher-%'"
        )
    finally:
        await connection.close()
    return {row["name"]: int(str(row["holder"]).rsplit(":", 1)[1]) for row in rows}


async def filled(database_url: str) -> int:
    connection = await asyncpg.connect(_dsn(database_url))
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM orders WHERE status = 'FILLED'"
        )
    finally:
        await connection.close()
    return count


def create_feed_user(env: dict[str, str]) -> None:
    subprocess.run(
        [*CLI, "create-user", "feeder", "--role", "FEED", "--password-stdin"],
        input=FEED_PASSWORD + "\n",
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )


def start_pinned(servers: list[ServerProcess]) -> None:
    """Start each server and pin all its threads to its own core (0, 1, ...)."""
    for core, server in enumerate(servers):
        server.start()
        assert server.process is not None
        subprocess.run(
            ["taskset", "-a", "-cp", str(core), str(server.process.pid)],
            check=True,
            capture_output=True,
        )


async def fill_run(
    database_url: str, redis_url: str, orders: int, processes: int
) -> dict[str, Any]:
    env = {
        "DATABASE_URL": database_url,
        "BROADCAST_URL": redis_url,
        "MARKET_FEED": "none",
        "MATCHER_SHARDS": "2",
        "LEADER_LEASE_SECONDS": "2",
        "JWT_SECRET": SECRET,
        "STRATEGY_ENGINE_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "RATE_LIMIT": "false",
    }
    await asyncio.to_thread(create_feed_user, env)
    servers = [ServerProcess(env) for _ in range(processes)]
    try:
        await asyncio.to_thread(start_pinned, servers)
        pids = {s.process.pid for s in servers if s.process}
        deadline = time.monotonic() + 60
        while (
            set((await shard_holders(database_url)).values()) != pids
            or len(await shard_holders(database_url)) != 2
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"shards not spread: {await shard_holders(database_url)}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(5)  # the new leaders load their books from the database
        async with httpx.AsyncClient(base_url=servers[0].http, timeout=60) as http:
            login = await http.post(
                "/graphql", json={"query": LOGIN, "variables": {"u": "feeder", "p": FEED_PASSWORD}}
            )
            token = login.json()["data"]["login"]["tokens"]["accessToken"]
            now = datetime.now(UTC).isoformat()
            ticks = [
                {
                    "symbol": code,
                    "time": now,
                    "last": str(price),
                    "bid": str(price),
                    "ask": str(price),
                    "volume": "1000000000",
                }
                for code, (price, _) in SYMBOLS.items()
            ]
            started = time.perf_counter()
            response = await http.post(
                "/graphql",
                json={"query": INGEST, "variables": {"ticks": ticks}},
                headers={"authorization": f"Bearer {token}"},
            )
            assert response.json()["data"]["ingestTicks"]["accepted"] == 2, response.text
            while (done := await filled(database_url)) < 2 * orders:
                if time.perf_counter() - started > 600:
                    raise TimeoutError(f"{done} of {2 * orders} filled")
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - started
    finally:
        for server in servers:
            server.stop()
    return {
        "processes": processes,
        "orders": 2 * orders,
        "fill_seconds": round(seconds, 3),
        "fills_per_second": round(2 * orders / seconds, 1),
    }


async def configuration(
    server_url: str, redis_url: str, orders: int, processes: int
) -> dict[str, Any]:
    database_url = await create_database(server_url, f"bench_shards_{processes}")
    await place(database_url, redis_url, orders)
    return await fill_run(database_url, redis_url, orders, processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5000, help="orders per symbol")
    args = parser.parse_args()
    assert (shard_of("XRPUSDT", 2), shard_of("BTCUSDT", 2)) == (0, 1)
    runs = []
    with postgres_server() as server_url, redis_server() as redis_url:
        for processes in (1, 2):
            run = asyncio.run(configuration(server_url, redis_url, args.orders, processes))
            print(json.dumps(run), flush=True)
            runs.append(run)
    result = {
        "command": (
            f"PYTHONPATH=. .venv/bin/python -m bench.matcher_processes --orders {args.orders}"
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
        "two_vs_one": round(runs[1]["fills_per_second"] / runs[0]["fills_per_second"], 2),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
