"""Tick-to-fill latency with a deep book: 100,000 resting orders, 1,000 ticks/s.

For each backend (a throwaway PostgreSQL, and a SQLite file) the real services
run (ingestor, hub, matcher leader, event relay). The book is filled with
``--resting`` LIMIT buys well below the market (none can cross): the first
``PLACE_BATCH`` through the real ``OrderService.place_orders``, the rest as
copies of a placed row inserted in bulk (``--seed place`` places them all, which
takes minutes for 100,000) — the rows placement writes, differing only in the
limit (and reserved) price and the times, with cash to cover every reservation. Then ticks arrive
at ``--rate`` per second for ``--seconds``; beside them, a task places one
MARKET buy per ``--every`` ticks' time (awaiting its commit), and the first tick
after that commit fills it. The latency of a fill is from the moment that tick
is handed to the ingestor (stored, published, taken by the matcher, matched, its
fill committed) to the fill's commit.
Ingest calls are not awaited one by one: the ingestor batches what arrives
together, as it does for a real feed.

    .venv/bin/python -m bench.tick_to_fill [--resting 100000] [--rate 1000]
        [--seconds 10] [--every 50] [--backends postgresql,sqlite] [--seed bulk|place]
        [--output bench/results/tick_to_fill.json]

Writes bench/results/tick_to_fill.json: p50/p99/max fill latency, ticks sent and
ticks the run actually sustained, per backend.
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

from sqlalchemy import insert, select

from bench.seed import create_database
from graphql_api.platform.activity import Activity
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.repositories import reservations
from storage.timeseries import Tick
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "tick_to_fill.json"
SYMBOL = "XRPUSDT"
PRICE = Decimal("2.1500")
PLACE_BATCH = 100
INSERT_BATCH = 5000


def resting_request(n: int) -> OrderRequest:
    """The ``n``-th resting order: 0.5000 .. 1.4999, far below the market, 10,000 levels."""
    return OrderRequest(
        SYMBOL,
        OrderSide.BUY,
        OrderType.LIMIT,
        Decimal("10.0"),
        limit_price=Decimal("0.5000") + Decimal(n % 10000) / 10000,
    )


async def place_resting(services: Any, user: int, first: int, last: int) -> None:
    """Orders ``first`` .. ``last - 1`` through the real placement path, a batch at a time."""
    for start in range(first, last, PLACE_BATCH):
        batch = [resting_request(n) for n in range(start, min(start + PLACE_BATCH, last))]
        for outcome in await services.orders.place_orders(user, batch):
            assert outcome.order is not None and outcome.order.status == "NEW", outcome


async def insert_resting(services: Any, template_id: int, first: int, last: int) -> None:
    """Orders ``first`` .. ``last - 1`` as copies of the placed order ``template_id``:
    the same row but for the limit price (which is also what it reserves at) and times."""
    async with services.sessions() as session:
        template = await session.scalar(select(models.Order).where(models.Order.id == template_id))
        assert template is not None and template.reserve_price == template.limit_price
        columns = {
            column.key: getattr(template, column.key)
            for column in models.Order.__table__.columns
            if column.key not in ("id", "client_order_id")
        }
        for start in range(first, last, INSERT_BATCH):
            now = datetime.now(UTC)
            rows = []
            for n in range(start, min(start + INSERT_BATCH, last)):
                price = resting_request(n).limit_price
                rows.append(
                    {**columns, "limit_price": price, "reserve_price": price,
                     "created_at": now, "updated_at": now}
                )  # fmt: skip
            await session.execute(insert(models.Order), rows)
        # rows written around the order service: bring the kept reservations up to them
        await reservations.recompute(session, [template.user_id])
        await session.commit()


def settings_for(database_url: str) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        MARKET_FEED="none",
        DEMO_START_CASH="100000000000",
        MAX_ORDER_NOTIONAL="100000000",
        JWT_SECRET="a-benchmark-secret-of-32-characters",
        STRATEGY_ENGINE_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        WEBHOOKS_ENABLED="false",
        EQUITY_SNAPSHOTS_ENABLED="false",
        MATCHER_MAX_TICK_LAG_SECONDS="60",
        PRICE_BAND_PERCENT="90",  # room for a deep book of bids below the market
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(
    database_url: str, resting: int, rate: int, seconds: float, every: int, seed: str = "bulk"
) -> dict[str, Any]:
    async with open_services(settings_for(database_url)) as services:
        await services.ingestor.ingest(
            [Tick(SYMBOL, datetime.now(UTC), PRICE, PRICE, PRICE, Decimal(1))]
        )
        user = services.demo_user_id
        started = time.perf_counter()
        placed_first = resting if seed == "place" else min(resting, PLACE_BATCH)
        await place_resting(services, user, 0, placed_first)
        if placed_first < resting:
            async with services.sessions() as session:
                template_id = await session.scalar(
                    select(models.Order.id).where(models.Order.user_id == user).limit(1)
                )
            assert template_id is not None
            await insert_resting(services, template_id, placed_first, resting)
        booked_in = time.perf_counter() - started
        # every order announced to the matcher (polls the relay's backlog)
        while await services.outbox.backlog() > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        # and the matcher's periodic check (every 5 s) has read the whole book, including
        # the inserted orders that were never announced (about a second per 5,000)
        await asyncio.sleep(6.0 + resting / 5_000)

        commits: list[float] = []
        counted = Activity.fill_committed

        def fill_committed(activity: Activity, *args: Any, **kwargs: Any) -> None:
            commits.append(time.perf_counter())
            counted(activity, *args, **kwargs)

        # the class, not the instance: Activity has slots (restored below)
        Activity.fill_committed = fill_committed  # type: ignore[method-assign,assignment]
        market = OrderRequest(SYMBOL, OrderSide.BUY, OrderType.MARKET, Decimal("10.0"))
        sent: list[float] = []
        pending: set[asyncio.Task[Any]] = set()
        total = int(rate * seconds)
        committed: list[int] = []  # orders placed and committed, not yet given a tick

        async def place_market_order(n: int) -> None:
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            placed = await services.orders.place_order(user, market)
            assert placed.order is not None and placed.order.status == "NEW", placed
            committed.append(n)

        async def place_market_orders() -> None:
            # Beside the tick stream, not in it: awaiting each commit in the tick loop
            # held the ticks back (the run sustained ~300 ticks/s of the 1,000 asked);
            # each on its own, so a slow commit does not delay the next placement.
            await asyncio.gather(*(place_market_order(n) for n in range(0, total, every)))

        began = time.perf_counter()
        placer = asyncio.create_task(place_market_orders())
        for n in range(total):
            due = began + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # the first tick handed over after an order's commit is the one that fills it
            handed = time.perf_counter()
            sent.extend(handed for _ in committed)
            committed.clear()
            tick = Tick(SYMBOL, datetime.now(UTC), PRICE, PRICE, PRICE, Decimal(1000))
            task = asyncio.create_task(services.ingestor.ingest([tick]))
            pending.add(task)
            task.add_done_callback(pending.discard)
        elapsed = time.perf_counter() - began
        await placer
        await asyncio.gather(*pending)
        deadline = time.perf_counter() + 60
        while len(commits) < len(sent) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        Activity.fill_committed = counted  # type: ignore[method-assign]
        latencies = [(commit - tick) * 1000 for tick, commit in zip(sent, commits, strict=False)]
    return {
        "resting_orders": resting,
        "booking_seconds": round(booked_in, 1),
        "ticks_sent": total,
        "ticks_per_second_sustained": round(total / elapsed, 1),
        "fills": len(latencies),
        "fills_expected": len(sent),
        "fill_latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "max": round(max(latencies), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resting", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--seed",
        choices=("bulk", "place"),
        default="bulk",
        help="bulk: place 100 orders, insert copies of them for the rest; place: place all",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for backend in args.backends.split(","):
        run = (args.resting, args.rate, args.seconds, args.every, args.seed)
        if backend == "postgresql":
            with postgres_server() as url:
                figures[backend] = asyncio.run(_on_postgres(url, *run))
        elif backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="quantgraph-bench-") as directory:
                url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
                figures[backend] = asyncio.run(measure(url, *run))
        else:
            raise SystemExit(f"unknown backend {backend!r}")
        print(backend, json.dumps(figures[backend]), flush=True)
    result = {
        "command": (
            f".venv/bin/python -m bench.tick_to_fill --resting {args.resting} --rate {args.rate}"
            f" --seconds {args.seconds} --every {args.every} --backends {args.backends}"
            f" --seed {args.seed}"
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


async def _on_postgres(
    server_url: str, resting: int, rate: int, seconds: float, every: int, seed: str
) -> dict[str, Any]:
    url = await create_database(server_url, "bench_tick_to_fill")
    return await measure(url, resting, rate, seconds, every, seed)


if __name__ == "__main__":
    main()
