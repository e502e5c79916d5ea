"""Fill throughput of the paper matcher: N crossing orders filled by one tick.

For each backend (a throwaway PostgreSQL, and a SQLite file), migrates and
seeds a database, places N market buys through the real OrderService (risk
checks included; ``place_orders`` in batches of 100, so placement is not what
this measures), waits until the matcher has booked them, then sends ONE tick
that crosses all of them and times until the matcher has committed every fill
(counted by the process's fill counter, checked against the database at the
end). Fills are written in batches (:mod:`graphql_api.trading.fill_batch`);
before batching, each fill was its own transaction.

    .venv/bin/python -m bench.matcher_fills [--orders 10000] [--backends postgresql,sqlite]
        [--label NAME] [--profile /tmp/fills.prof]

Writes bench/results/matcher_fills.json (``--label`` names the run inside it, so
a run of older code can be recorded beside the current one).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
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
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.timeseries import Tick
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "matcher_fills.json"
PLACE_BATCH = 100
TIMEOUT = 600.0


async def measure(database_url: str, orders: int, profile: Path | None = None) -> dict[str, Any]:
    settings = Settings(
        DATABASE_URL=database_url,
        MARKET_FEED="none",
        DEMO_START_CASH="100000000",
        MAX_ORDER_NOTIONAL="100000000",
        JWT_SECRET="a-benchmark-secret-of-32-characters",
        STRATEGY_ENGINE_ENABLED="false",
    )
    async with open_services(settings) as services:
        price = Decimal("2.1500")
        quote = Tick("XRPUSDT", datetime.now(UTC), price, price, price, Decimal(10**9))
        await services.ingestor.ingest([quote])
        request = OrderRequest("XRPUSDT", OrderSide.BUY, OrderType.MARKET, Decimal("10.0"))
        started = time.perf_counter()
        for first in range(0, orders, PLACE_BATCH):
            batch = [request] * min(PLACE_BATCH, orders - first)
            for outcome in await services.orders.place_orders(services.demo_user_id, batch):
                assert outcome.order is not None and outcome.order.status == "NEW"
        placed = time.perf_counter() - started
        # Every order's announcement is relayed, and the matcher has booked them.
        while True:
            if await services.outbox.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        before = services.activity.fills
        profiler = cProfile.Profile() if profile is not None else None
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        await services.ingestor.ingest(
            [Tick("XRPUSDT", datetime.now(UTC), price, price, price, Decimal(10**9))]
        )
        while services.activity.fills - before < orders:
            if time.perf_counter() - started > TIMEOUT:
                raise TimeoutError(f"{services.activity.fills - before} of {orders} filled")
            await asyncio.sleep(0.005)
        matched = time.perf_counter() - started
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        async with services.sessions() as session:
            filled = await session.scalar(
                select(func.count())
                .select_from(models.Order)
                .where(models.Order.status == "FILLED")
            )
            trades = await session.scalar(select(func.count()).select_from(models.Trade))
        assert filled == orders and trades == orders, (filled, trades)
    return {
        "orders": orders,
        "placement_seconds": round(placed, 3),
        "placement_orders_per_second": round(orders / placed, 1),
        "fill_seconds": round(matched, 3),
        "fills_per_second": round(orders / matched, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--label", default="current")
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of the fill phase to PROFILE.<backend>"
    )
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for backend in args.backends.split(","):
        if backend == "postgresql":
            with postgres_server() as url:
                figures[backend] = asyncio.run(
                    _on_postgres(url, args.orders, _profile_path(args.profile, backend))
                )
        elif backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="quantgraph-bench-") as directory:
                url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
                figures[backend] = asyncio.run(
                    measure(url, args.orders, _profile_path(args.profile, backend))
                )
        else:
            raise SystemExit(f"unknown backend {backend!r}")
        print(backend, json.dumps(figures[backend]), flush=True)
    result: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result.setdefault("runs", {})
    result["command"] = ".venv/bin/python -m bench.matcher_fills --orders N --backends B --label L"
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    result["runs"][args.label] = {
        "command": (
            f".venv/bin/python -m bench.matcher_fills --orders {args.orders}"
            f" --backends {args.backends} --label {args.label}"
        ),
        **figures,
    }
    for stale in ("postgresql",):  # the single-run layout this file had before
        result.pop(stale, None)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["runs"][args.label], indent=2))


async def _on_postgres(server_url: str, orders: int, profile: Path | None) -> dict[str, Any]:
    return await measure(await create_database(server_url, "bench_matcher"), orders, profile)


def _profile_path(base: Path | None, backend: str) -> Path | None:
    return None if base is None else base.with_name(f"{base.name}.{backend}")


if __name__ == "__main__":
    main()
