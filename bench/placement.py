"""Order placement throughput through the real OrderService, with 1 and 32 concurrent clients.

Each client is its own user (so nothing but the database serialises them) and
places resting LIMIT buys (below the market: nothing fills, the matcher stays
idle) one after the other through ``OrderService.place_order`` — validation,
idempotency, risk checks, the outbox, the commit. Orders/s is the number of
orders over the wall time of the round; each configuration runs ``--rounds``
times and the median is kept. PostgreSQL is a throwaway server started here;
SQLite a file in a temporary directory.

With ``--over http`` the orders are ``placeOrder`` mutations sent to a
``quantgraph serve`` process on the same database, pinned to core 0, by
autocannon (Node, on core 1; the load generator of ``bench.run``) over 1 and 32
keep-alive connections, each count as one trader of its own, for ``--seconds``
a round: what a trading client pays, GraphQL, HTTP and authentication included.
Afterwards every answered request must have left its order in the database.

    .venv/bin/python -m bench.placement [--orders 2000] [--rounds 3] [--backends sqlite,postgresql]
                                        [--over in-process|http] [--seconds 10]

Writes bench/results/placement.json (``placement_http.json`` over HTTP). Pin it
to one core to compare trees: ``taskset -c 1 .venv/bin/python -m bench.placement``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.seed import create_database
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.engine import create_engine
from storage.timeseries import Tick
from tests.support.processes import ServerProcess
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "placement.json"
HTTP_RESULTS = Path(__file__).parent / "results" / "placement_http.json"
LOADGEN = Path(__file__).parent / "peers" / "loadgen"
SYMBOL = "XRPUSDT"
PRICE = Decimal("2.1500")
RESTING = Decimal("2.0500")  # within the 10 % band, below the ask: rests, never fills
CLIENTS = (1, 32)
SECRET = "a-benchmark-secret-of-32-characters"
PLACE = (
    "mutation { placeOrder(input: { symbol: "
    f'"{SYMBOL}", side: BUY, type: LIMIT, quantity: "10.0", limitPrice: "{RESTING}"'
    " }) { order { id status } userErrors { code message } } }"
)


async def add_traders(services: Services, count: int) -> list[int]:
    """``count`` users with plenty of USDT, created directly (no password hashing)."""
    now = datetime.now(UTC)
    async with services.sessions() as session:
        users = [
            models.User(
                username=f"bench{n}-{time.time_ns()}",
                username_key=f"bench{n}-{time.time_ns()}",
                password_hash=None,
                role="TRADER",
                created_at=now,
            )
            for n in range(count)
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(
            models.CashBalance(
                user_id=user.id, currency="USDT", amount=Decimal(10**12), updated_at=now
            )
            for user in users
        )
        await session.commit()
        return [user.id for user in users]


async def one_round(services: Services, users: list[int], orders: int) -> float:
    request = OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, Decimal("10.0"), RESTING)
    per_client = orders // len(users)

    async def client(user_id: int) -> None:
        for _ in range(per_client):
            outcome = await services.orders.place_order(user_id, request)
            assert outcome.order is not None and outcome.order.status == "NEW", outcome

    started = time.perf_counter()
    await asyncio.gather(*(client(user) for user in users))
    return per_client * len(users) / (time.perf_counter() - started)


def _settings(database_url: str) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        MARKET_FEED="none",
        MAX_ORDER_NOTIONAL="100000000",
        JWT_SECRET=SECRET,
    )


async def measure(database_url: str, orders: int, rounds: int) -> dict[str, Any]:
    settings = _settings(database_url)
    figures: dict[str, Any] = {}
    async with open_services(settings) as services:
        quote = Tick(SYMBOL, datetime.now(UTC), PRICE, PRICE, PRICE, Decimal(10**9))
        await services.ingestor.ingest([quote])
        for clients in CLIENTS:
            users = await add_traders(services, clients)
            await one_round(services, users, min(orders, 200))  # warm-up
            rates = [await one_round(services, users, orders) for _ in range(rounds)]
            figures[f"clients_{clients}"] = {
                "orders_per_round": orders // clients * clients,
                "orders_per_second_median": round(statistics.median(rates), 1),
                "orders_per_second_rounds": [round(rate, 1) for rate in rates],
            }
        commit = getattr(services.orders, "placements", None)
        if commit is not None:
            figures["transactions"] = commit.batches
            figures["largest_batch"] = commit.largest_batch
    return figures


async def _autocannon(url: str, token: str, connections: int, seconds: float) -> dict[str, Any]:
    """One autocannon run (Node, on core 1) posting ``placeOrder`` as one trader."""
    if not (LOADGEN / "node_modules" / "autocannon").is_dir():
        install = ["npm", "install", "--no-audit", "--no-fund", "--silent"]
        await asyncio.to_thread(subprocess.run, install, cwd=LOADGEN, check=True)
    process = await asyncio.create_subprocess_exec(
        *("taskset", "-c", "1", "node", "node_modules/autocannon/autocannon.js"),
        *("--connections", str(connections), "--duration", str(seconds), "--method", "POST"),
        *("--headers", "content-type=application/json"),
        *("--headers", f"authorization=Bearer {token}"),
        *("--body", json.dumps({"query": PLACE}), "--json", f"{url}/graphql"),
        cwd=LOADGEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    output, _ = await process.communicate()
    report: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    if report["non2xx"] or report["errors"]:
        raise RuntimeError(f"placeOrder over HTTP failed: {report['non2xx']} non-2xx")
    return report


async def _sign_in_traders(database_url: str) -> list[tuple[int, str]]:
    """A quote for the symbol and one trader per client count, with an access token
    (sessions started in process, on the database the server will use)."""
    async with open_services(_settings(database_url)) as services:
        quote = Tick(SYMBOL, datetime.now(UTC), PRICE, PRICE, PRICE, Decimal(10**9))
        await services.ingestor.ingest([quote])
        traders: list[tuple[int, str]] = []
        for user_id in await add_traders(services, len(CLIENTS)):
            async with services.sessions() as session:
                user = await session.get(models.User, user_id)
            assert user is not None
            traders.append((user_id, (await services.auth.start_session(user)).access_token))
        return traders


async def _orders_of(database_url: str, user_id: int) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            statement = select(func.count()).where(models.Order.user_id == user_id)
            return int((await connection.execute(statement)).scalar_one())
    finally:
        await engine.dispose()


async def measure_http(database_url: str, seconds: float, rounds: int) -> dict[str, Any]:
    """Each client count with a trader of its own; every request must have placed a
    resting order (counted in the database afterwards: a 200 with an error would not)."""
    traders = await _sign_in_traders(database_url)
    server = ServerProcess(
        {
            "DATABASE_URL": database_url,
            "MARKET_FEED": "none",
            "MAX_ORDER_NOTIONAL": "100000000",
            "JWT_SECRET": SECRET,
            "RATE_LIMIT": "false",
            "ACCESS_LOG": "false",
            "LOG_LEVEL": "warning",
        }
    )
    await asyncio.to_thread(server.start)
    figures: dict[str, Any] = {}
    try:
        assert server.process is not None
        pin = ["taskset", "-a", "-cp", "0", str(server.process.pid)]
        await asyncio.to_thread(subprocess.run, pin, check=True, capture_output=True)
        for clients, (_, token) in zip(CLIENTS, traders, strict=True):
            answered = (await _autocannon(server.http, token, clients, 3))["requests"]["total"]
            reports = []
            for _ in range(rounds):
                reports.append(await _autocannon(server.http, token, clients, seconds))
                answered += reports[-1]["requests"]["total"]
            rates = [report["requests"]["total"] / seconds for report in reports]
            figures[f"clients_{clients}"] = {
                "seconds_per_round": seconds,
                "orders_per_second_median": round(statistics.median(rates), 1),
                "orders_per_second_rounds": [round(rate, 1) for rate in rates],
                "latency_ms_p50": statistics.median(r["latency"]["p50"] for r in reports),
                "latency_ms_p99": statistics.median(r["latency"]["p99"] for r in reports),
                "answered": answered,
            }
    finally:
        await asyncio.to_thread(server.stop)
    for clients, (user_id, _) in zip(CLIENTS, traders, strict=True):
        placed = await _orders_of(database_url, user_id)
        answered = figures[f"clients_{clients}"]["answered"]
        # requests cut off at the end of a run may have been placed without an answer
        if not answered <= placed <= answered + clients * (rounds + 1):
            raise RuntimeError(f"{clients} clients: {answered} answered, {placed} orders placed")
        figures[f"clients_{clients}"]["orders_placed"] = placed
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--over", choices=("in-process", "http"), default="in-process")
    parser.add_argument("--seconds", type=float, default=10, help="per round, over HTTP")
    args = parser.parse_args()
    backends = args.backends.split(",")
    over_http = args.over == "http"
    size = f"--seconds {args.seconds:g}" if over_http else f"--orders {args.orders}"

    def run(url: str) -> dict[str, Any]:
        if over_http:
            return asyncio.run(measure_http(url, args.seconds, args.rounds))
        return asyncio.run(measure(url, args.orders, args.rounds))

    result: dict[str, Any] = {
        "command": (
            f".venv/bin/python -m bench.placement {size} --rounds {args.rounds} "
            f"--backends {args.backends} --over {args.over}"
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as scratch:
            url = f"sqlite+aiosqlite:///{scratch}/bench.db"
            result["sqlite"] = run(url)
    if "postgresql" in backends:
        with postgres_server() as server:
            url = asyncio.run(create_database(server, "bench_placement"))
            result["postgresql"] = run(url)
    target = HTTP_RESULTS if over_http else RESULTS
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
