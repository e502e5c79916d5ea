"""The nested orders page and the account page, through the compiled read path and
through the standard path.

One process, one app per path (``COMPILED_READS=true`` / ``false``) on the same
database, requests sent one after another as the demo user over httpx's ASGI
transport (no network, no concurrency): what a request costs the server's one
core. ``{ __typename }`` is timed too, as the floor any request pays here.
The page is the benchmark's (:data:`bench.http_queries.ORDERS`: 100 orders,
each with its symbol and strategy, the strategy with its symbol), over 100 orders
and 10 strategies seeded for the demo user. Both answers are checked to be the
same bytes first. SQL statements per request are counted on the engine.
The account page (:data:`ACCOUNT`) is ``me { account { balances positions
trades(first: 50) } }`` over 100 fills and 5 open positions of the same user.

    taskset -c 1 .venv/bin/python -m bench.compiled_reads [--requests 200] [--rounds 5] [--postgres]

``--postgres`` also runs on a PostgreSQL server started for the run (as the tests
start theirs). Writes bench/results/compiled_reads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select
from starlette.applications import Starlette

from bench.http_queries import ORDERS, TRIVIAL
from graphql_api.server.app import create_app
from graphql_api.services import Services
from storage import models
from tests.conftest import login_token, make_settings

RESULTS = Path(__file__).parent / "results" / "compiled_reads.json"
WARM_UP = 30
ORDERS_SEEDED = 100
STRATEGIES_SEEDED = 10
POSITIONS_SEEDED = 5
ACCOUNT = """
query Account {
  me {
    username
    account {
      balances { currency cash reserved buyingPower }
      positions { quantity costBasis averageCost realizedPnl lastPrice marketValue unrealizedPnl
        symbol { code } }
      trades(first: 50) {
        edges { cursor node { id orderId side quantity price commission realizedPnl time
          symbol { code } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""


async def seed(services: Services) -> None:
    """100 orders and 10 strategies of the demo user (four in five orders by a strategy),
    a fill of each order and 5 open positions."""
    async with services.sessions() as session:
        user = await session.scalar(select(models.User).where(models.User.username == "demo"))
        assert user is not None, "the demo user is seeded at start-up"
        codes = list(await session.scalars(select(models.Symbol.code).order_by("code")))
        now = datetime.now(UTC)
        strategies = [
            models.Strategy(
                user_id=user.id,
                name=f"bench strategy {index:02d}",
                kind="SMA_CROSS",
                symbol_code=codes[index % len(codes)],
                interval="1m",
                parameters={"fast": 5, "slow": 20},
                status="STOPPED",
                auto_trade=False,
                created_at=now,
                updated_at=now,
            )
            for index in range(STRATEGIES_SEEDED)
        ]
        session.add_all(strategies)
        await session.flush()
        for index in range(ORDERS_SEEDED):
            strategy = strategies[index % len(strategies)] if index % 5 else None
            session.add(
                models.Order(
                    user_id=user.id,
                    client_order_id=f"bench-{index}",
                    symbol_code=strategy.symbol_code if strategy else codes[index % len(codes)],
                    strategy_id=strategy.id if strategy else None,
                    side="BUY" if index % 2 else "SELL",
                    type="LIMIT",
                    time_in_force="GTC",
                    quantity=Decimal(100 * (1 + index % 7)),
                    limit_price=Decimal(1000 + index) / 100,
                    status="NEW",
                    filled_quantity=Decimal(0),
                    version=0,
                    created_at=now - timedelta(seconds=ORDERS_SEEDED - index),
                    updated_at=now,
                )
            )
        await session.flush()
        orders = await session.scalars(select(models.Order).where(models.Order.user_id == user.id))
        for order in orders:
            session.add(
                models.Trade(
                    order_id=order.id,
                    user_id=user.id,
                    symbol_code=order.symbol_code,
                    side=order.side,
                    quantity=order.quantity,
                    price=order.limit_price or Decimal(1),
                    commission=Decimal("0.0123"),
                    realized_pnl=Decimal("1.5") if order.side == "SELL" else Decimal(0),
                    tick_time=order.created_at,
                    created_at=order.created_at,
                )
            )
        for index, code in enumerate(codes[:POSITIONS_SEEDED]):
            position = await session.get(models.Position, (user.id, code))
            if position is None:
                position = models.Position(user_id=user.id, symbol_code=code)
                session.add(position)
            position.quantity = Decimal(100 * (index + 1))
            position.cost_basis = Decimal(1234 * (index + 1)) / 10
            position.realized_pnl = Decimal(index) / 4
            position.updated_at = now
        await session.commit()


@contextlib.asynccontextmanager
async def client_of(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {await login_token(app)}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers
    ) as client:
        yield client


async def time_requests(
    client: httpx.AsyncClient,
    statements: list[int],
    requests: int,
    rounds: int,
    query: str = ORDERS,
) -> dict[str, Any]:
    payload = {"query": query}
    for _ in range(WARM_UP):
        await client.post("/graphql", json=payload)
    before = statements[0]
    await client.post("/graphql", json=payload)
    per_request = statements[0] - before
    means: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            await client.post("/graphql", json=payload)
        means.append((time.perf_counter() - started) / requests * 1000)
    median = statistics.median(means)
    return {
        "median_ms_per_request": round(median, 3),
        "requests_per_second": round(1000 / median, 1),
        "rounds_ms": [round(mean, 3) for mean in means],
        "sql_statements_per_request": per_request,
    }


async def measure(database_url: str, requests: int, rounds: int) -> dict[str, Any]:
    quiet = {"ACCESS_LOG": False, "MATCHER_ENABLED": False, "STRATEGY_ENGINE_ENABLED": False}
    results: dict[str, Any] = {}
    compiled_app = create_app(make_settings(database_url, **quiet))
    standard_app = create_app(make_settings(database_url, **quiet, COMPILED_READS=False))
    async with (
        compiled_app.router.lifespan_context(compiled_app),
        standard_app.router.lifespan_context(standard_app),
        client_of(compiled_app) as compiled,
        client_of(standard_app) as standard,
    ):
        await seed(compiled_app.state.services)
        for document, query in (("orders", ORDERS), ("account", ACCOUNT)):
            answers = [
                (await client.post("/graphql", json={"query": query})).content
                for client in (compiled, standard)
            ]
            assert answers[0] == answers[1], f"{document}: the two paths must answer the same bytes"
            assert b'"errors"' not in answers[0], answers[0][:500]
            data = json.loads(answers[0])["data"]
            if document == "orders":
                assert len(data["orders"]["edges"]) == ORDERS_SEEDED
            else:
                assert len(data["me"]["account"]["trades"]["edges"]) == 50
        for name, app, client in (
            ("compiled", compiled_app, compiled),
            ("standard", standard_app, standard),
        ):
            counter = [0]

            def count(*_args: object, counter: list[int] = counter) -> None:
                counter[0] += 1

            engine = app.state.services.engine.sync_engine
            event.listen(engine, "before_cursor_execute", count)
            try:
                results[name] = await time_requests(client, counter, requests, rounds)
                account = await time_requests(client, counter, requests, rounds, ACCOUNT)
                results.setdefault("account", {})[name] = account
                if name == "compiled":
                    # What any request costs here (transport, auth, limits): the floor.
                    results["trivial"] = await time_requests(
                        client, counter, requests, rounds, TRIVIAL
                    )
            finally:
                event.remove(engine, "before_cursor_execute", count)
    account = results["account"]
    account["speed-up"] = round(
        account["standard"]["median_ms_per_request"] / account["compiled"]["median_ms_per_request"],
        2,
    )
    results["speed-up"] = round(
        results["standard"]["median_ms_per_request"] / results["compiled"]["median_ms_per_request"],
        2,
    )
    return results


async def on_postgres(requests: int, rounds: int) -> dict[str, Any]:
    from bench.seed import create_database
    from tests.support.servers import postgres_server

    with postgres_server() as server_url:
        url = await create_database(server_url, f"bench_{uuid.uuid4().hex[:8]}")
        return await measure(url, requests, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-compiled-reads-"))
    results: dict[str, Any] = {}
    try:
        url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        results["sqlite"] = asyncio.run(measure(url, args.requests, args.rounds))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.postgres:
        results["postgresql"] = asyncio.run(on_postgres(args.requests, args.rounds))
    command = "taskset -c 1 .venv/bin/python -m bench.compiled_reads"
    command += f" --requests {args.requests} --rounds {args.rounds}"
    result = {
        "command": command + (" --postgres" if args.postgres else ""),
        "machine": {"python": platform.python_version()},
        "document": ORDERS,
        "account_document": ACCOUNT,
        **results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
