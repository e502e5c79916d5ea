"""Nested fields are batched: the statement count does not grow with the page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from graphql_api.services import Services
from storage import models
from tests.support.graphql import execute

QUERY_NESTED_ORDERS = """
query ($first: Int!) {
  orders(first: $first) {
    edges { node { id symbol { name } strategy { name symbol { name } } } }
  }
}
"""


_COUNTING: ContextVar[bool] = ContextVar("counting_statements", default=False)


@contextmanager
def counting_statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements run from this block's task (and the tasks it starts).

    Background loops (leader keep-alives, the revocation and catalogue polls) use
    the same engine and would otherwise land in the count at random.
    """
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _COUNTING.get():
            statements.append(statement)

    engine = services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    token = _COUNTING.set(True)
    try:
        yield statements
    finally:
        _COUNTING.reset(token)
        event.remove(engine, "before_cursor_execute", record)
    # counted at all: a request that ran somewhere the flag cannot reach would count 0
    assert statements, "no statement was counted"


async def seed_orders(services: Services, count: int) -> None:
    """Orders over many symbols and strategies, so a naive resolver would query per row."""
    now = datetime.now(UTC)
    async with services.sessions() as session:
        symbols = [spec.code for spec in services.catalog.all()]
        strategies = [
            models.Strategy(
                user_id=services.demo_user_id,
                name=f"s{i}",
                kind="SMA_CROSS",
                symbol_code=symbols[(i + 3) % len(symbols)],
                interval="1m",
                parameters={"fast": 5, "slow": 20},
                status="STOPPED",
                auto_trade=False,
                created_at=now,
                updated_at=now,
            )
            for i in range(10)
        ]
        session.add_all(strategies)
        await session.flush()
        session.add_all(
            models.Order(
                user_id=services.demo_user_id,
                client_order_id=None,
                symbol_code=symbols[i % len(symbols)],
                strategy_id=strategies[i % len(strategies)].id if i % 3 else None,
                side="BUY",
                type="LIMIT",
                time_in_force="GTC",
                quantity=Decimal(1),
                limit_price=Decimal(1),
                status="NEW",
                filled_quantity=Decimal(0),
                average_fill_price=None,
                reject_reason=None,
                created_at=now,
                updated_at=now,
            )
            for i in range(count)
        )
        await session.commit()


@pytest.mark.parametrize("first", [10, 100])
async def test_nested_orders_page_uses_a_constant_number_of_statements(
    client: httpx.AsyncClient, app: Starlette, first: int
) -> None:
    # given more orders than the page, spread over symbols and strategies
    services: Services = app.state.services
    await seed_orders(services, 120)
    # (the caller's role is cached for ROLE_CACHE_SECONDS; on a slow machine seeding can
    # outlast that, and its re-read is not what is counted here: refresh it first)
    await execute(client, "{ me { id } }")
    # when fetching a page with nested symbol and strategy (and the strategy's symbol)
    with counting_statements(services) as statements:
        data = await execute(client, QUERY_NESTED_ORDERS, {"first": first})
    # then: the page, the symbols, the strategies, the strategies' missing symbols
    edges = data["orders"]["edges"]
    assert len(edges) == first
    assert any(edge["node"]["strategy"] for edge in edges)
    print(f"\nnested orders page first={first}: {len(statements)} SQL statements")
    assert len(statements) <= 4, statements
