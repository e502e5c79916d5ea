"""Order placement and fill throughput of the paper matcher on PostgreSQL.

Starts a throwaway PostgreSQL, migrates and seeds it, places N market orders
through the real OrderService (risk checks included), then sends one tick and
times the matcher filling all of them (each fill is its own transaction).

    .venv/bin/python -m bench.matcher_fills [--orders 1000]

Writes bench/results/matcher_fills.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from bench.seed import create_database
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.timeseries import Tick
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "matcher_fills.json"


async def measure(database_url: str, orders: int) -> dict[str, float]:
    settings = Settings(
        DATABASE_URL=database_url,
        MARKET_FEED="none",
        DEMO_START_CASH="100000000",
        MAX_ORDER_NOTIONAL="100000000",
        JWT_SECRET="a-benchmark-secret-of-32-characters",
    )
    async with open_services(settings) as services:
        price = Decimal("2.1500")
        quote = Tick("XRPUSDT", datetime.now(UTC), price, price, price, Decimal(10**9))
        await services.ingestor.ingest([quote])
        request = OrderRequest("XRPUSDT", OrderSide.BUY, OrderType.MARKET, Decimal("10.0"))
        started = time.perf_counter()
        for _ in range(orders):
            outcome = await services.orders.place_order(services.demo_user_id, request)
            assert outcome.order is not None and outcome.order.status == "NEW"
        placed = time.perf_counter() - started
        await asyncio.sleep(1.0)  # the matcher has every order in its book
        started = time.perf_counter()
        await services.ingestor.ingest(
            [Tick("XRPUSDT", datetime.now(UTC), price, price, price, Decimal(10**9))]
        )
        while True:
            async with services.sessions() as session:
                filled = await session.scalar(
                    select(func.count())
                    .select_from(models.Order)
                    .where(models.Order.status == "FILLED")
                )
            if filled == orders:
                break
            await asyncio.sleep(0.01)
        matched = time.perf_counter() - started
    return {
        "orders": orders,
        "placement_seconds": round(placed, 3),
        "orders_per_second": round(orders / placed, 1),
        "fill_seconds": round(matched, 3),
        "fills_per_second": round(orders / matched, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    args = parser.parse_args()
    with postgres_server() as url:
        figures = asyncio.run(_prepare_and_measure(url, args.orders))
    result = {
        "command": f".venv/bin/python -m bench.matcher_fills --orders {args.orders}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "postgresql": figures,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


async def _prepare_and_measure(server_url: str, orders: int) -> dict[str, float]:
    return await measure(await create_database(server_url, "bench_matcher"), orders)


if __name__ == "__main__":
    main()
