"""The compiled read path answers byte for byte what the standard path answers.

Two apps run on one seeded database (SQLite and PostgreSQL): one with
``COMPILED_READS=true``, one with it off. Every document goes to both, for two
users, and the response bodies must be the same bytes. A hand-written set covers
aliases, fragments, directives, variables, pages, other users' ids and bad input;
hypothesis writes many more documents over the compiled types. The plan counters
show which documents the compiled path really answered.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import strawberry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from graphql_api.auth import Role
from graphql_api.server.app import QuantgraphGraphQL
from graphql_api.services import Services
from schema.compiled.runner import CompiledReads
from schema.fast_execution import compiled_reads_of
from storage import models
from storage.repositories import users as user_repo
from storage.timeseries import Tick
from tests.conftest import http_client, login_token, make_settings, running_app, user_token

PASSWORD = "a-good-password"
BASE = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)

ORDER_FIELDS = [
    "id",
    "clientOrderId",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "limitPrice",
    "stopPrice",
    "triggeredAt",
    "status",
    "filledQuantity",
    "averageFillPrice",
    "rejectReason",
    "expiresAt",
    "createdAt",
    "updatedAt",
]
SYMBOL_FIELDS = ["code", "name", "exchange", "currency", "tickSize", "lotSize", "tradable"]
STRATEGY_FIELDS = [
    "id",
    "name",
    "kind",
    "interval",
    "status",
    "autoTrade",
    "createdAt",
    "updatedAt",
]


@dataclass
class Paths:
    """Clients of the compiled app and the standard app, per user."""

    compiled: dict[str, httpx.AsyncClient]
    standard: dict[str, httpx.AsyncClient]
    plans: CompiledReads
    standard_plans: CompiledReads
    order_ids: dict[str, list[int]]
    strategy_ids: dict[str, list[int]]

    async def same(
        self, user: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Both answers, compared as bytes; the decoded body."""
        payload = {"query": query, "variables": variables or {}}
        compiled = await self.compiled[user].post("/graphql", json=payload)
        standard = await self.standard[user].post("/graphql", json=payload)
        assert compiled.status_code == standard.status_code
        assert compiled.content == standard.content, _difference(
            query, variables, compiled.content, standard.content
        )
        body: dict[str, Any] = compiled.json()
        return body


def _difference(query: str, variables: object, compiled: bytes, standard: bytes) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(compiled, standard, strict=False)) if a != b),
        min(len(compiled), len(standard)),
    )
    window = slice(max(0, at - 150), at + 150)
    return f"{query}\n{variables}\ncompiled: {compiled[window]!r}\nstandard: {standard[window]!r}"


def _schema_of(app: Starlette) -> Any:
    for route in app.routes:
        if isinstance(route, Route) and isinstance(route.endpoint, QuantgraphGraphQL):
            schema = route.endpoint.schema
            assert isinstance(schema, strawberry.Schema)
            return schema._schema
    raise AssertionError("no GraphQL route")


async def _seed(
    services: Services, users: dict[str, int]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Strategies and orders with the values that are easy to get wrong: decimals at
    and beyond their scale, whole-second and sub-second times, nulls, text that JSON
    must escape, every status, side, type and time in force."""
    order_ids: dict[str, list[int]] = {name: [] for name in users}
    strategy_ids: dict[str, list[int]] = {name: [] for name in users}
    symbols = ["600519.SH", "BTCUSDT", "601398.SH", "ETHUSDT"]
    statuses = ["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED"]
    kinds = ["MARKET", "LIMIT", "STOP", "STOP_LIMIT"]
    tifs = ["GTC", "DAY", "IOC", "FOK", "GTD"]
    prices = ["1520.5", "1520.123456", "6", "0.01", "95000.00", "3400.1000000", None]
    quantities = ["100", "0.0001", "1.5", "200.000", "0.00001"]
    async with services.sessions() as session:
        for name, user_id in users.items():
            for index in range(3):
                strategy = models.Strategy(
                    user_id=user_id,
                    name=f'{name} "strategy" {index} — ü',
                    kind=["SMA_CROSS", "RSI_REVERSION", "MACD_CROSS"][index],
                    symbol_code=symbols[index],
                    interval=["1m", "1h", "1d"][index],
                    parameters={"fast": 5, "slow": 20.5},
                    status=["STOPPED", "RUNNING", "ERROR"][index],
                    auto_trade=index % 2 == 0,
                    status_reason=None,
                    created_at=BASE + timedelta(seconds=index),
                    updated_at=BASE + timedelta(seconds=index, microseconds=123),
                )
                session.add(strategy)
                await session.flush()
                strategy_ids[name].append(strategy.id)
                for number in range(index * 2):
                    session.add(
                        models.Signal(
                            strategy_id=strategy.id,
                            symbol_code=symbols[number % len(symbols)],
                            side="BUY" if number % 2 else "SELL",
                            price=Decimal(prices[number % 6] or "1"),
                            bar_time=BASE + timedelta(minutes=number),
                            reason=f'SMA(5) crossed "above" SMA(20) #{number}',
                            order_id=None,
                            created_at=BASE + timedelta(minutes=number, microseconds=number),
                        )
                    )
            for index in range(37 if name == "alice" else 12):
                price = prices[index % len(prices)]
                created = BASE + timedelta(minutes=index, microseconds=0 if index % 3 else 7)
                order = models.Order(
                    user_id=user_id,
                    client_order_id=None if index % 4 else f'c-{name}-{index}\n"quoted" ✓',
                    symbol_code=symbols[index % len(symbols)],
                    strategy_id=strategy_ids[name][index % 3] if index % 2 else None,
                    side="BUY" if index % 2 else "SELL",
                    type=kinds[index % len(kinds)],
                    time_in_force=tifs[index % len(tifs)],
                    quantity=Decimal(quantities[index % len(quantities)]),
                    limit_price=Decimal(price) if price is not None else None,
                    stop_price=Decimal("1500") if index % 5 == 0 else None,
                    triggered_at=created + timedelta(seconds=1) if index % 5 == 0 else None,
                    status=statuses[index % len(statuses)],
                    filled_quantity=Decimal("0") if index % 2 else Decimal("50.00"),
                    average_fill_price=Decimal("1520.1234567") if index % 3 == 0 else None,
                    reject_reason="INSUFFICIENT_CASH" if index % 6 == 4 else None,
                    # open BUY orders hold cash back (balances' reserved, buyingPower)
                    reserve_price=Decimal("1520.123") if index % 4 == 1 else None,
                    expires_at=created + timedelta(days=1) if index % 5 == 4 else None,
                    version=0,
                    created_at=created,
                    updated_at=created + timedelta(microseconds=500),
                )
                session.add(order)
                await session.flush()
                order_ids[name].append(order.id)
                for fill in range(index % 3):
                    session.add(
                        models.Trade(
                            order_id=order.id,
                            user_id=user_id,
                            symbol_code=order.symbol_code,
                            side=order.side,
                            quantity=Decimal(quantities[fill]),
                            price=Decimal(prices[fill] or "7.5"),
                            commission=Decimal(["0.15", "0.123456789", "2"][fill]),
                            realized_pnl=Decimal(["0", "-12.5", "1.00000"][(index + fill) % 3]),
                            tick_time=created + timedelta(seconds=fill, microseconds=fill * 10),
                            created_at=created,
                        )
                    )
            # positions: long, short, at and beyond their scale, and a flat one (not listed)
            holdings = [
                ("600519.SH", "100", "152050.5", "0"),
                ("BTCUSDT", "0.0100", "950.123456789", "-3.5"),
                ("ETHUSDT", "0.000", "0", "12.25"),
                ("601398.SH", "-200", "-1140", "7"),
            ]
            for code, quantity, cost, pnl in holdings[: 4 if name == "alice" else 2]:
                session.add(
                    models.Position(
                        user_id=user_id,
                        symbol_code=code,
                        quantity=Decimal(quantity),
                        cost_basis=Decimal(cost),
                        realized_pnl=Decimal(pnl),
                        updated_at=BASE,
                    )
                )
        await session.commit()
    await services.timeseries.write_ticks(_ticks())
    return order_ids, strategy_ids


def _ticks() -> list[Tick]:
    """Ticks over three hours of two symbols: prices at, beyond and short of the tick
    size's decimals, volumes likewise, sub-second times, minutes without a tick."""
    prices = ["1520.5", "1520.123456", "1521", "1519.99", "1520.100", "1600.0000001"]
    volumes = ["100", "0.5", "200.000", "0.00001", "3"]
    ticks: list[Tick] = []
    for index in range(400):
        moment = BASE + timedelta(seconds=index * 27, microseconds=(index % 4) * 1001)
        for code in ("600519.SH", "BTCUSDT"):
            price = Decimal(prices[index % len(prices)]) + index
            ticks.append(
                Tick(code, moment, price, price, price, Decimal(volumes[index % len(volumes)]))
            )
    return ticks


@pytest.fixture
async def paths(database_url: str) -> AsyncIterator[Paths]:
    # Generated documents alias freely; the limits are tested elsewhere. Neither
    # app runs the engines that write in the background: the strategy engine
    # would mark the seeded strategies with odd parameters ERROR between the two
    # requests of a comparison, and the answers would differ for that reason.
    limits = {
        "QUERY_MAX_ALIASES": 1000,
        "QUERY_MAX_FIELDS": 100_000,
        "MATCHER_ENABLED": False,
        "STRATEGY_ENGINE_ENABLED": False,
    }
    standard_settings = make_settings(
        database_url, **limits, COMPILED_READS=False, SEED_DEMO_DATA=False
    )
    async with (
        running_app(make_settings(database_url, **limits)) as compiled_app,
        running_app(standard_settings) as standard_app,
    ):
        services: Services = compiled_app.state.services
        users: dict[str, int] = {}
        compiled_tokens: dict[str, str] = {}
        standard_tokens: dict[str, str] = {}
        for name in ("alice", "bob"):
            compiled_tokens[name] = await user_token(compiled_app, name, Role.TRADER)
            standard_tokens[name] = await login_token(standard_app, name, PASSWORD)
            async with services.sessions() as session:
                user = await user_repo.user_by_username(session, name)
            assert user is not None
            users[name] = user.id
        standard_tokens["viewer"] = compiled_tokens["viewer"] = ""
        order_ids, strategy_ids = await _seed(services, users)
        async with contextlib.AsyncExitStack() as stack:
            compiled = {
                name: await stack.enter_async_context(http_client(compiled_app, token or None))
                for name, token in compiled_tokens.items()
            }
            standard = {
                name: await stack.enter_async_context(http_client(standard_app, token or None))
                for name, token in standard_tokens.items()
            }
            yield Paths(
                compiled,
                standard,
                compiled_reads_of(_schema_of(compiled_app)),
                compiled_reads_of(_schema_of(standard_app)),
                order_ids,
                strategy_ids,
            )


NESTED = """
query NestedOrders { orders(first: 100) { edges { node { id status quantity
  symbol { code name } strategy { name symbol { code } } } } } }
"""
FULL_ORDER = " ".join(ORDER_FIELDS)
EVERYTHING = f"""
query Everything($first: Int = 20, $after: String) {{
  orders(first: $first, after: $after) {{
    __typename
    edges {{ __typename cursor node {{ __typename {FULL_ORDER}
      symbol {{ __typename {" ".join(SYMBOL_FIELDS)} }}
      strategy {{ __typename {" ".join(STRATEGY_FIELDS)} symbol {{ code tickSize }} }} }} }}
    pageInfo {{ __typename hasNextPage endCursor }}
  }}
}}
"""
FRAGMENTS = """
query Fragments($withSymbol: Boolean!, $noStatus: Boolean!, $side: OrderSide) {
  __typename
  mine: orders(first: 5, side: $side) {
    page: pageInfo { next: hasNextPage end: endCursor hasNextPage }
    edges { c: cursor node { ...OrderBits ... on Order { status @skip(if: $noStatus) } } }
    edges { node { id createdAt } }
  }
  again: orders(first: 2) {
    edges { node { ... { id symbol @include(if: $withSymbol) { code } } } }
  }
}
fragment OrderBits on Order {
  id price: limitPrice
  symbol @include(if: $withSymbol) { ...SymbolBits }
  strategy { ... on Strategy { id kind interval } }
}
fragment SymbolBits on Symbol { code lotSize tickSize }
"""
ONE = """
query One($id: ID!) { order(id: $id) { id quantity limitPrice symbol { code } strategy { id } } }
"""
FILTERED = """
query Filtered($status: [OrderStatus!], $symbol: String, $side: OrderSide, $type: OrderType,
               $strategyId: ID, $from: DateTime, $to: DateTime, $first: Int = 20, $after: String) {
  orders(status: $status, symbol: $symbol, side: $side, type: $type, strategyId: $strategyId,
         from: $from, to: $to, first: $first, after: $after) {
    edges { cursor node { id status side type createdAt symbol { code } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
FILLS = """
{ orders(first: 30) { edges { node { id fills { __typename id orderId side quantity price time
  symbol { code } } } } } }
"""
# One root field selected twice under one key: one field, both selections.
TWICE = """
{ orders(first: 2) { edges { cursor } } ... { orders(first: 2) { pageInfo { hasNextPage } } } }
"""
# A compiled root field next to one the standard path answers, in one document.
MIXED = """
query Mixed($id: ID!) { exchanges order(id: $id) { id symbol { code } } me { username } }
"""
KLINE_FIELDS = ["time", "open", "high", "low", "close", "volume", "tradeCount"]
SERIES_FIELDS = ["symbol", "interval", "times", "opens", "highs", "lows", "closes", "volumes"]
TRADE_FIELDS = [
    "id",
    "orderId",
    "side",
    "quantity",
    "price",
    "commission",
    "realizedPnl",
    "time",
]
ME = f"""
query Me($first: Int = 20, $after: String, $symbol: String, $side: OrderSide,
         $from: DateTime, $to: DateTime) {{
  me {{ __typename id username role createdAt account {{ __typename
    balances {{ __typename currency cash reserved buyingPower }}
    positions {{ __typename quantity costBasis averageCost realizedPnl lastPrice marketValue
                unrealizedPnl symbol {{ code lotSize }} }}
    trades(first: $first, after: $after, symbol: $symbol, side: $side, from: $from, to: $to) {{
      __typename
      edges {{ cursor node {{ __typename {" ".join(TRADE_FIELDS)} symbol {{ code }} }} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }} }}
}}
"""
ME_FRAGMENTS = """
query MeFragments($yes: Boolean!) {
  me { ...Who }
  again: me { account { b: balances { cash } } }
}
fragment Who on User {
  name: username
  account @include(if: $yes) {
    t: trades(first: 2) { pageInfo { end: endCursor } edges { c: cursor } }
    p: positions { q: quantity ... on Position { costBasis } }
  }
  account { positions { symbol { code } } }
}
"""


def _cursor(kind: str, key: object) -> str:
    from resolvers.pagination import encode_cursor

    return encode_cursor(kind, str(key))


async def test_hand_written_documents_answer_the_same_bytes(paths: Paths) -> None:
    # given two users' orders and strategies
    alice, bob = paths.order_ids["alice"], paths.order_ids["bob"]
    # when / then: documents the compiled path answers
    before = paths.plans.answered
    body = await paths.same("alice", NESTED)
    assert len(body["data"]["orders"]["edges"]) == len(alice)
    body = await paths.same("alice", EVERYTHING)
    end = body["data"]["orders"]["pageInfo"]["endCursor"]
    await paths.same("alice", EVERYTHING, {"after": end, "first": 7})
    await paths.same("alice", EVERYTHING, {"first": 100})
    await paths.same("bob", EVERYTHING, {"first": 1})
    for switches in (
        {"withSymbol": True, "noStatus": False},
        {"withSymbol": False, "noStatus": True, "side": "SELL"},
    ):
        await paths.same("alice", FRAGMENTS, switches)
    await paths.same("alice", ONE, {"id": str(alice[3])})
    other = await paths.same("alice", ONE, {"id": str(bob[0])})  # bob's order: null for alice
    assert other["data"]["order"] is None
    await paths.same("bob", ONE, {"id": str(bob[0])})
    await paths.same("alice", ONE, {"id": "999999999"})
    await paths.same("alice", MIXED, {"id": str(alice[0])})
    await paths.same("alice", TWICE)
    await paths.same("alice", FILLS)
    filters: tuple[dict[str, object], ...] = (
        {"status": ["NEW", "FILLED"]},
        {"status": []},
        {"symbol": "btcusdt", "side": "BUY"},
        {"symbol": ""},
        {"type": "STOP_LIMIT", "first": 3},
        {"strategyId": str(paths.strategy_ids["alice"][1])},
        {"strategyId": str(paths.strategy_ids["bob"][1])},  # bob's strategy: nothing
        {"from": "2026-03-02T01:40:00Z", "to": "2026-03-02T02:00:00.000007+00:00"},
        {"from": "2026-03-02T09:40:00+08:00"},
        {"after": _cursor("order", alice[10]), "first": 4},
        {"after": _cursor("order", bob[3])},  # a cursor past bob's id: still only alice's
    )
    for filter_variables in filters:
        await paths.same("alice", FILTERED, filter_variables)
    assert paths.plans.answered - before == 28
    # and: documents with errors or uncompiled fields take the standard path, same bytes
    before = paths.plans.answered
    refused: tuple[tuple[str, dict[str, object] | None], ...] = (
        (FILTERED, {"first": 0}),
        (FILTERED, {"first": 101}),
        (FILTERED, {"after": "not a cursor"}),
        (FILTERED, {"after": _cursor("strategy", 1)}),
        (FILTERED, {"strategyId": "x1"}),
        (FILTERED, {"from": "2026-03-02T01:40:00", "to": "2026-03-02T02:00:00Z"}),
        (FILTERED, {"from": "2026-03-02T03:00:00Z", "to": "2026-03-02T02:00:00Z"}),
        (ONE, {"id": "-1"}),
        (
            "{ orders { edges { node { fills { commission } symbol { quote { last } } } } } }",
            None,
        ),
        ("{ orders { edges { node { symbol { quote { last } } } } } }", None),
        ("{ orders { edges { node { strategy { parameters } } } } }", None),
        ("{ orders { edges { node { symbol { session { timezone isOpen } } } } } }", None),
        ("{ orders(last: 2) { totalCount pageInfo { hasPreviousPage startCursor } } }", None),
        ("{ orders(first: 1) { edges { node { id } } pageInfo { hasPreviousPage } } }", None),
        ("{ order(id: 1) { id } orders(first: 1) { nope } }", None),
    )
    for query, variables in refused:
        await paths.same("alice", query, variables)
    await paths.same("viewer", NESTED)  # not signed in: UNAUTHENTICATED from the standard path
    assert paths.plans.answered == before
    # and COMPILED_READS=false answered everything through graphql-core
    assert paths.standard_plans.answered == paths.standard_plans.compiled == 0


STRATEGIES = f"""
query Strategies($first: Int = 20, $after: String) {{
  strategies(first: $first, after: $after) {{
    edges {{ cursor node {{ {" ".join(STRATEGY_FIELDS)}
      symbol {{ code tickSize lotSize }} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
STRATEGY = """
query Strategy($id: ID!, $orders: Int = 20) {
  strategy(id: $id) {
    id name kind symbol { code tradable }
    orders(first: $orders) { id quantity limitPrice strategy { id } symbol { code } }
    recent: signals(first: 2) { id side price barTime reason createdAt strategy { name } }
    signals { __typename id symbol { code tickSize } }
  }
}
"""
SYMBOLS = f"""
query Symbols($exchange: String, $search: String, $first: Int = 20, $after: String) {{
  symbols(exchange: $exchange, search: $search, first: $first, after: $after) {{
    edges {{ cursor node {{ {" ".join(SYMBOL_FIELDS)} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
SYMBOL = """
query Symbol($code: String!) { symbol(code: $code) { code name tickSize lotSize tradable } }
"""


async def test_strategies_and_symbols_answer_the_same_bytes(paths: Paths) -> None:
    # given two users' strategies and the demo symbols
    mine, theirs = paths.strategy_ids["alice"], paths.strategy_ids["bob"]
    before = paths.plans.answered
    # when / then
    body = await paths.same("alice", STRATEGIES)
    assert len(body["data"]["strategies"]["edges"]) == len(mine)
    end = (await paths.same("alice", STRATEGIES, {"first": 2}))["data"]["strategies"]
    await paths.same("alice", STRATEGIES, {"first": 2, "after": end["pageInfo"]["endCursor"]})
    await paths.same("bob", STRATEGIES)
    await paths.same("alice", STRATEGY, {"id": str(mine[1])})
    await paths.same("alice", STRATEGY, {"id": str(mine[2]), "orders": 3})
    assert (await paths.same("alice", STRATEGY, {"id": str(theirs[1])}))["data"]["strategy"] is None
    body = await paths.same("viewer", SYMBOLS, {"first": 100})  # public market data
    assert len(body["data"]["symbols"]["edges"]) > 10
    page = (await paths.same("alice", SYMBOLS, {"first": 3}))["data"]["symbols"]
    await paths.same("alice", SYMBOLS, {"first": 3, "after": page["pageInfo"]["endCursor"]})
    await paths.same("alice", SYMBOLS, {"exchange": "binance"})
    await paths.same("alice", SYMBOLS, {"exchange": ""})
    await paths.same("alice", SYMBOL, {"code": "btcusdt"})
    assert (await paths.same("alice", SYMBOL, {"code": "NOPE"}))["data"]["symbol"] is None
    assert paths.plans.answered - before == 14
    # and: what the compiled path leaves to the standard path, same bytes
    before = paths.plans.answered
    await paths.same("alice", SYMBOLS, {"search": "ping_an%"})
    await paths.same("alice", SYMBOLS, {"after": _cursor("order", 1)})
    await paths.same("alice", STRATEGY, {"id": "0x10"})
    await paths.same("alice", STRATEGY, {"id": str(mine[1]), "orders": 0})
    await paths.same("alice", "{ strategies { edges { node { orders(first: 0) { id } } } } }")
    await paths.same("alice", "{ strategies { edges { node { signals(first: 101) { id } } } } }")
    await paths.same("viewer", STRATEGIES)
    assert paths.plans.answered == before


async def test_me_and_account_answer_the_same_bytes(paths: Paths) -> None:
    # given two users with cash, positions (one flat) and fills
    before = paths.plans.answered
    # when / then
    body = await paths.same("alice", ME)
    account = body["data"]["me"]["account"]
    assert [p["symbol"]["code"] for p in account["positions"]] == [
        "600519.SH",
        "601398.SH",
        "BTCUSDT",
    ]
    assert account["balances"] and len(account["trades"]["edges"]) == 20
    # the values computed in Python after the statement are real ones
    assert any(Decimal(balance["reserved"]) > 0 for balance in account["balances"])
    last_prices = [position["lastPrice"] for position in account["positions"]]
    assert None in last_prices and any(last_prices)
    assert all(position["averageCost"] for position in account["positions"])
    end = account["trades"]["pageInfo"]["endCursor"]
    await paths.same("alice", ME, {"after": end, "first": 7})
    await paths.same("alice", ME, {"first": 100})
    await paths.same("bob", ME, {"first": 3})
    trades: tuple[dict[str, object], ...] = (
        {"symbol": "btcusdt"},
        {"symbol": "", "side": "SELL"},
        {"side": "BUY", "first": 2},
        {"from": "2026-03-02T01:40:00Z", "to": "2026-03-02T02:00:00.000010+00:00"},
        {"after": _cursor("trade", 1)},
    )
    for trade_variables in trades:
        await paths.same("alice", ME, trade_variables)
    await paths.same("alice", ME)  # the first filters again: the first plan
    for yes in (True, False):
        await paths.same("alice", ME_FRAGMENTS, {"yes": yes})
    assert paths.plans.answered - before == 14
    # and: what the compiled path leaves to the standard path, same bytes
    before = paths.plans.answered
    refused: tuple[tuple[str, dict[str, object] | None], ...] = (
        (ME, {"first": 0}),
        (ME, {"first": 101}),
        (ME, {"after": "not a cursor"}),
        (ME, {"after": _cursor("order", 1)}),
        (ME, {"from": "2026-03-02T01:40:00", "to": "2026-03-02T02:00:00Z"}),
        (ME, {"from": "2026-03-02T03:00:00Z", "to": "2026-03-02T02:00:00Z"}),
        ("{ me { account { trades(last: 2) { edges { cursor } } } } }", None),
        ("{ me { account { trades { totalCount } } } }", None),
        (
            "{ me { account { a: trades(first: 1) { edges { cursor } } b: trades { pageInfo "
            "{ endCursor } } } } }",
            None,
        ),
        (
            '{ me { account { closedPositions { netPnl } performance(currency: "CNY") { sharpe } } '
            "} }",
            None,
        ),
    )
    for query, variables in refused:
        await paths.same("alice", query, variables)
    await paths.same("viewer", ME)  # not signed in: UNAUTHENTICATED from the standard path
    assert paths.plans.answered == before


KLINES = """
query Klines($symbol: String!, $interval: KlineInterval!, $from: DateTime, $to: DateTime,
             $limit: Int = 500) {
  klines(symbol: $symbol, interval: $interval, from: $from, to: $to, limit: $limit) {
    time open high low close volume tradeCount
  }
}
"""
KLINES_SHAPES = """
query KlineShapes($yes: Boolean!) {
  a: klines(symbol: "btcusdt", interval: MINUTE_5, limit: 7) {
    __typename c: close ... on Kline { time } close volume @include(if: $yes) ...Bits
  }
  klines(symbol: "600519.SH", interval: HOUR_1) { tradeCount open }
  none: klines(symbol: "NOPE", interval: MINUTE_1) { time }
}
fragment Bits on Kline { high low time }
"""


# Arguments both kline shapes answer on the compiled path, and ones it leaves to the
# standard path (which reports the error).
SERIES_ARGUMENTS: tuple[dict[str, object], ...] = (
    {"symbol": "btcusdt", "interval": "MINUTE_15"},
    {"symbol": "BTCUSDT", "interval": "MINUTE_1", "limit": 3},
    {"symbol": "600519.SH", "interval": "MINUTE_5", "from": "2026-03-02T02:00:00Z"},
    {"symbol": "600519.SH", "interval": "MINUTE_1", "to": "2026-03-02T10:00:00+08:00"},
    {
        "symbol": "600519.SH",
        "interval": "MINUTE_1",
        "from": "2026-03-02T01:40:00Z",
        "to": "2026-03-02T02:10:00.5+00:00",
        "limit": 10,
    },
    {"symbol": "600519.SH", "interval": "DAY_1"},
)
REFUSED_SERIES_ARGUMENTS: tuple[dict[str, object], ...] = (
    {"symbol": "BTCUSDT", "interval": "MINUTE_1", "limit": 0},
    {"symbol": "BTCUSDT", "interval": "MINUTE_1", "limit": 10**9},
    {"symbol": "BTCUSDT", "interval": "MINUTE_1", "from": "2026-03-02T01:40:00"},
    {
        "symbol": "BTCUSDT",
        "interval": "MINUTE_1",
        "from": "2026-03-02T03:00:00Z",
        "to": "2026-03-02T02:00:00Z",
    },
    {"symbol": "BTCUSDT", "interval": "WEEK"},
)


KLINE_SERIES = """
query KlineSeries($symbol: String!, $interval: KlineInterval!, $from: DateTime, $to: DateTime,
                  $limit: Int = 500) {
  klineSeries(symbol: $symbol, interval: $interval, from: $from, to: $to, limit: $limit) {
    symbol interval times opens highs lows closes volumes
  }
}
"""
KLINE_SERIES_SHAPES = """
query KlineSeriesShapes($yes: Boolean!) {
  a: klineSeries(symbol: "btcusdt", interval: MINUTE_5, limit: 7) {
    __typename c: closes ... on KlineSeries { times } closes volumes @include(if: $yes) ...Columns
  }
  klineSeries(symbol: "600519.SH", interval: HOUR_1) { interval opens symbol }
  none: klineSeries(symbol: "nope", interval: MINUTE_1) { times symbol interval }
}
fragment Columns on KlineSeries { highs lows times }
"""


def _bars(body: dict[str, Any]) -> int:
    data = body["data"]
    return len(data["klines"]) if "klines" in data else len(data["klineSeries"]["times"])


@pytest.mark.parametrize(
    ("query", "shapes"), [(KLINES, KLINES_SHAPES), (KLINE_SERIES, KLINE_SERIES_SHAPES)]
)
async def test_both_kline_shapes_answer_the_same_bytes(
    paths: Paths, query: str, shapes: str
) -> None:
    # given three hours of ticks of two symbols
    before = paths.plans.answered
    # when / then: rows (klines) and columns (klineSeries) alike
    body = await paths.same("viewer", query, {"symbol": "600519.sh", "interval": "MINUTE_1"})
    assert _bars(body) > 100
    for variables in SERIES_ARGUMENTS:
        await paths.same("alice", query, variables)
    for yes in (True, False):
        await paths.same("alice", shapes, {"yes": yes})
    assert paths.plans.answered - before == 1 + len(SERIES_ARGUMENTS) + 2 * 3
    # and: what the compiled path leaves to the standard path (errors), same bytes
    before = paths.plans.answered
    for variables in REFUSED_SERIES_ARGUMENTS:
        await paths.same("alice", query, variables)
    assert paths.plans.answered == before


async def test_kline_series_with_indicators_takes_the_standard_path(paths: Paths) -> None:
    # given bars whose indicators are computed in Python
    before = paths.plans.answered
    indicators = (
        'query { klineSeries(symbol: "BTCUSDT", interval: MINUTE_1, limit: 40) '
        "{ closes indicators { sma(period: 5) rsi } } }"
    )
    # when / then
    body = await paths.same("alice", indicators)
    assert len(body["data"]["klineSeries"]["indicators"]["sma"]) == 40
    assert paths.plans.answered == before


# -- generated documents ------------------------------------------------------------------


# Documents generated per database; CI or a deeper run may ask for thousands.
EXAMPLES = int(os.environ.get("QUANTGRAPH_DIFFERENTIAL_EXAMPLES", "150"))


@dataclass
class _Doc:
    query: str
    variables: dict[str, Any]


def _selection(draw: st.DrawFn, fields: list[str], nested: dict[str, str], depth: int) -> str:
    """A random non-empty selection: fields (some aliased, some under directives or in
    inline fragments), nested selections, __typename."""
    chosen = draw(
        st.lists(st.sampled_from(fields + list(nested)), min_size=1, max_size=8, unique=True)
    )
    parts: list[str] = []
    for index, name in enumerate(chosen):
        if name in nested:
            sub = nested[name]
            part = f"{name} {{ {sub} }}"
        else:
            part = name
        if draw(st.booleans()):
            part = f"a{depth}_{index}: {part}"
        wrap = draw(st.sampled_from(["", "", "include", "skip", "inline", "bare"]))
        if wrap == "include":
            part = f"... @include(if: $yes) {{ {part} }}"
        if wrap == "skip":
            part = f"... @skip(if: $no) {{ {part} }}"
        if wrap == "inline":
            part = f"... {{ {part} }}"
        if wrap == "bare":
            part = f"... @include(if: $no) {{ {part} }}"
        parts.append(part)
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), "__typename")
    return " ".join(parts)


def _me(draw: st.DrawFn) -> str:
    """A selection of ``me``: the user's fields and its account's lists and fills."""
    arguments = [f"first: {draw(st.sampled_from([1, 2, 5, 20, 100]))}"]
    if draw(st.booleans()):
        arguments.append(f"side: {draw(st.sampled_from(['BUY', 'SELL']))}")
    if draw(st.booleans()):
        arguments.append(f'symbol: "{draw(st.sampled_from(["btcusdt", "600519.SH", ""]))}"')
    if draw(st.booleans()):
        arguments.append(f'after: "{_cursor("trade", draw(st.integers(1, 60)))}"')
    node = _selection(draw, TRADE_FIELDS, {"symbol": "...S"}, 7)
    edges = _selection(draw, ["cursor"], {"node": node}, 8)
    info = _selection(draw, ["hasNextPage", "endCursor"], {}, 9)
    trades = _selection(draw, [], {"edges": edges, "pageInfo": info}, 10)
    position_fields = [
        "quantity",
        "costBasis",
        "averageCost",
        "realizedPnl",
        "lastPrice",
        "marketValue",
        "unrealizedPnl",
    ]
    positions = _selection(draw, position_fields, {"symbol": "...S"}, 11)
    balance_fields = ["currency", "cash", "reserved", "buyingPower"]
    lists = {
        "balances": _selection(draw, balance_fields, {}, 12),
        "positions": positions,
        f"trades({', '.join(arguments)})": trades,
    }
    account = _selection(draw, [], lists, 13)
    return _selection(draw, ["id", "username", "role", "createdAt"], {"account": account}, 14)


@st.composite
def _documents(draw: st.DrawFn, order_ids: list[int]) -> _Doc:
    symbol = _selection(draw, SYMBOL_FIELDS, {}, 3)
    lists = {
        "symbol": "...S",
        f"orders(first: {draw(st.sampled_from([1, 3, 20]))})": "id quantity status symbol { code }",
        "signals": "id side price barTime reason",
    }
    strategy = _selection(draw, STRATEGY_FIELDS, lists, 2)
    fills = "id orderId side quantity price commission realizedPnl time symbol { code }"
    node = _selection(
        draw, ORDER_FIELDS, {"symbol": "...S", "strategy": strategy, "fills": fills}, 1
    )
    roots: list[str] = []
    variables: dict[str, Any] = {"yes": draw(st.booleans()), "no": draw(st.booleans())}
    for index in range(draw(st.integers(1, 2))):
        root = draw(
            st.sampled_from(["orders"] * 4 + ["order"] * 2 + ["other", "me", "klines", "series"])
        )
        if root == "series":
            symbol_code = draw(st.sampled_from(["600519.SH", "btcusdt", "NOPE"]))
            interval = draw(st.sampled_from(["MINUTE_1", "MINUTE_15", "DAY_1"]))
            limit = draw(st.sampled_from([1, 50, 500]))
            columns = _selection(draw, SERIES_FIELDS, {}, 16)
            roots.append(
                f's{index}: klineSeries(symbol: "{symbol_code}", interval: {interval}, '
                f"limit: {limit}) {{ {columns} }}"
            )
            continue
        if root == "klines":
            symbol_code = draw(st.sampled_from(["600519.SH", "btcusdt", "NOPE"]))
            interval = draw(st.sampled_from(["MINUTE_1", "MINUTE_5", "HOUR_1", "DAY_1"]))
            limit = draw(st.sampled_from([1, 2, 50, 500]))
            bars = _selection(draw, KLINE_FIELDS, {}, 15)
            roots.append(
                f'k{index}: klines(symbol: "{symbol_code}", interval: {interval}, '
                f"limit: {limit}) {{ {bars} }}"
            )
            continue
        if root == "me":
            roots.append(f"m{index}: me {{ {_me(draw)} }}")
            continue
        if root == "order":
            order_id = draw(st.sampled_from([*order_ids, 999_999]))
            roots.append(f'o{index}: order(id: "{order_id}") {{ {node} }}')
            continue
        if root == "other":
            roots.append(
                draw(
                    st.sampled_from(
                        [
                            f'x{index}: symbol(code: "ethusdt") {{ ...S }}',
                            f"x{index}: symbols(first: 4) {{ edges {{ cursor node {{ ...S }} }} }}",
                            f"x{index}: strategies(first: 2) {{ edges {{ node {{ {strategy} }} }} "
                            "pageInfo { endCursor hasNextPage } }",
                            f'x{index}: strategy(id: "2") {{ {strategy} }}',
                        ]
                    )
                )
            )
            continue
        arguments = [f"first: {draw(st.sampled_from([1, 2, 5, 20, 100]))}"]
        if draw(st.booleans()):
            arguments.append(f"side: {draw(st.sampled_from(['BUY', 'SELL']))}")
        if draw(st.booleans()):
            statuses = draw(st.lists(st.sampled_from(["NEW", "FILLED", "CANCELED"]), max_size=2))
            arguments.append(f"status: [{', '.join(statuses)}]")
        if draw(st.booleans()):
            arguments.append(f'after: "{_cursor("order", draw(st.sampled_from(order_ids)))}"')
        edges = _selection(draw, ["cursor"], {"node": node}, 4)
        info = _selection(draw, ["hasNextPage", "endCursor"], {}, 5)
        connection = _selection(draw, [], {"edges": edges, "pageInfo": info}, 6)
        roots.append(f"c{index}: orders({', '.join(arguments)}) {{ {connection} }}")
    body = " ".join(roots)
    used = [name for name in ("yes", "no") if f"${name}" in body]
    definitions = f"({', '.join(f'${name}: Boolean!' for name in used)})" if used else ""
    fragment = f" fragment S on Symbol {{ {symbol} }}" if "...S" in body else ""
    query = f"query Generated{definitions} {{ {body} }}{fragment}"
    variables = {name: variables[name] for name in used}
    return _Doc(query, variables)


async def test_generated_documents_answer_the_same_bytes(paths: Paths) -> None:
    # given documents generated over the compiled types (collected first: hypothesis
    # drives a synchronous function, the requests are async)
    order_ids = paths.order_ids["alice"][::5] + paths.order_ids["bob"][:2]
    documents: list[_Doc] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(_documents(order_ids))
    def collect(document: _Doc) -> None:
        documents.append(document)

    collect()
    before = paths.plans.answered
    # when / then: both paths give the same bytes for every one
    answered = 0
    for document in documents:
        body = await paths.same("alice", document.query, document.variables)
        if "errors" not in body:
            answered += len(re.findall(r"\b[coxmks][01]: ", document.query))
    # and the compiled path answered every root field of the documents that validate
    # (a few exceed the overlapping-fields limit: same bytes, from the standard path)
    assert answered > len(documents) * 0.8
    assert paths.plans.answered - before == answered
