"""Python function calls per item on two hot paths: deterministic, unlike seconds.

Wall-clock benchmarks on a shared machine spread by +-25% from run to run, so
they cannot tell a 5% change from noise. The number of Python calls a request
or an order costs does not depend on the machine's load: two trees that do the
same work make the same calls, give or take a few background wake-ups. Use it
to check that a refactor changed nothing, or to see where a speed-up came from.

- ``read``: one typical query (a page of symbols with their quotes, the query of
  :mod:`bench.limits_overhead`) through the fully hardened app, over httpx's
  ASGI transport, on a fresh SQLite database;
- ``trivial``: ``{ __typename }`` the same way: what a request costs besides its
  resolvers (transport, parsing, validation, limits, metrics);
- ``order``: one resting LIMIT order through the real ``OrderService``
  (validation, idempotency, risk, the transaction and its outbox event).

    .venv/bin/python -m bench.call_counts [--requests 200] [--orders 200]

``DOCUMENT_CACHE_SIZE=0`` in the environment measures without the document cache.

Writes bench/results/call_counts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import platform
import pstats
import shutil
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench.limits_overhead import QUERY
from graphql_api.server.app import create_app
from graphql_api.server.runtime import open_services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage.timeseries import Tick
from tests.hardening.conftest import hardened_settings

RESULTS = Path(__file__).parent / "results" / "call_counts.json"
WARM_UP = 30
TRIVIAL = "{ __typename }"


def calls_per_item(profile: cProfile.Profile, items: int) -> float:
    stats: Any = pstats.Stats(profile)  # typeshed does not declare ``total_calls``
    total: int = stats.total_calls
    return round(total / items, 1)


async def read_calls(database_url: str, requests: int, query: str = QUERY) -> float:
    settings = hardened_settings(
        database_url,
        RATE_LIMIT_ANONYMOUS_BURST=1e12,
        RATE_LIMIT_ANONYMOUS_PER_SECOND=1e12,
        ACCESS_LOG=False,
    )
    app = create_app(settings)
    profile = cProfile.Profile()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(WARM_UP):
                await client.post("/graphql", json={"query": query})
            profile.enable()
            for _ in range(requests):
                response = await client.post("/graphql", json={"query": query})
            profile.disable()
            assert "errors" not in response.json(), response.text
    return calls_per_item(profile, requests)


async def order_calls(database_url: str, orders: int) -> float:
    settings = hardened_settings(
        database_url,
        MARKET_FEED="none",
        DEMO_START_CASH="100000000",
        MAX_ORDER_NOTIONAL="100000000",
        STRATEGY_ENGINE_ENABLED=False,
    )
    price = Decimal("2.1500")
    # Below the market: every order rests, so the matcher does no fill meanwhile.
    request = OrderRequest(
        "XRPUSDT", OrderSide.BUY, OrderType.LIMIT, Decimal("10.0"), limit_price=Decimal("2.0")
    )
    profile = cProfile.Profile()
    async with open_services(settings) as services:
        quote = Tick("XRPUSDT", datetime.now(UTC), price, price, price, Decimal(10**9))
        await services.ingestor.ingest([quote])
        for _ in range(WARM_UP):
            await services.orders.place_order(services.demo_user_id, request)
        await asyncio.sleep(1.0)  # the matcher has the warm-up orders in its book
        profile.enable()
        for _ in range(orders):
            outcome = await services.orders.place_order(services.demo_user_id, request)
        profile.disable()
        assert outcome.order is not None and outcome.order.status == "NEW", outcome
    return calls_per_item(profile, orders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-calls-"))
    try:
        read = asyncio.run(
            read_calls(f"sqlite+aiosqlite:///{directory / 'read.db'}", args.requests)
        )
        trivial = asyncio.run(
            read_calls(f"sqlite+aiosqlite:///{directory / 'trivial.db'}", args.requests, TRIVIAL)
        )
        order = asyncio.run(
            order_calls(f"sqlite+aiosqlite:///{directory / 'order.db'}", args.orders)
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result = {
        "command": (
            f".venv/bin/python -m bench.call_counts --requests {args.requests} "
            f"--orders {args.orders}"
        ),
        "machine": {"python": platform.python_version()},
        "calls_per_read_request": read,
        "calls_per_trivial_request": trivial,
        "calls_per_order": order,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
