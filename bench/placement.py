"""Order placement throughput through the real OrderService, with 1 and 32 concurrent clients.

Each client is its own user (so nothing but the database serialises them) and
places resting LIMIT buys (below the market: nothing fills, the matcher stays
idle) one after the other through ``OrderService.place_order`` — validation,
idempotency, risk checks, the outbox, the commit. Orders/s is the number of
orders over the wall time of the round; each configuration runs ``--rounds``
times and the median is kept. PostgreSQL is a throwaway server started here;
SQLite a file in a temporary directory.

    .venv/bin/python -m bench.placement [--orders 2000] [--rounds 3] [--backends sqlite,postgresql]

Writes bench/results/placement.json. Pin it to one core to compare trees:
``taskset -c 1 .venv/bin/python -m bench.placement``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.seed import create_database
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.timeseries import Tick
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "placement.json"
SYMBOL = "XRPUSDT"
PRICE = Decimal("2.1500")
RESTING = Decimal("2.0500")  # within the 10 % band, below the ask: rests, never fills
CLIENTS = (1, 32)


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


async def measure(database_url: str, orders: int, rounds: int) -> dict[str, Any]:
    settings = Settings(
        DATABASE_URL=database_url,
        MARKET_FEED="none",
        MAX_ORDER_NOTIONAL="100000000",
        JWT_SECRET="a-benchmark-secret-of-32-characters",
    )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = args.backends.split(",")
    result: dict[str, Any] = {
        "command": (
            f".venv/bin/python -m bench.placement --orders {args.orders} "
            f"--rounds {args.rounds} --backends {args.backends}"
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as scratch:
            url = f"sqlite+aiosqlite:///{scratch}/bench.db"
            result["sqlite"] = asyncio.run(measure(url, args.orders, args.rounds))
    if "postgresql" in backends:
        with postgres_server() as server:
            url = asyncio.run(create_database(server, "bench_placement"))
            result["postgresql"] = asyncio.run(measure(url, args.orders, args.rounds))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
