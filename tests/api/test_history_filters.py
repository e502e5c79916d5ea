"""``orders`` and ``me.account.trades`` narrowed by symbol, side, type, strategy and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.services import Services
from storage import models
from tests.conftest import http_client, user_token
from tests.support.graphql import error_codes, execute, post

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id createdAt } userErrors { code message } }
}
"""
ORDERS = """
query ($symbol: String, $side: OrderSide, $type: OrderType, $strategyId: ID,
       $from: DateTime, $to: DateTime, $first: Int = 20, $after: String) {
  orders(symbol: $symbol, side: $side, type: $type, strategyId: $strategyId,
         from: $from, to: $to, first: $first, after: $after) {
    edges { node { id side type symbol { code } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
TRADES = """
query ($symbol: String, $side: OrderSide, $from: DateTime, $to: DateTime) {
  me { account { trades(symbol: $symbol, side: $side, from: $from, to: $to) {
    edges { node { id side time symbol { code } } }
  } } }
}
"""


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def place(client: httpx.AsyncClient, **fields: object) -> dict[str, str]:
    order: dict[str, object] = {"quantity": "100", "type": "LIMIT", **fields}
    payload = (await execute(client, PLACE, {"input": order}))["placeOrder"]
    assert payload["userErrors"] == [], payload
    result: dict[str, str] = payload["order"]
    return result


async def order_ids(client: httpx.AsyncClient, **variables: object) -> list[str]:
    data = await execute(client, ORDERS, variables)
    return [edge["node"]["id"] for edge in data["orders"]["edges"]]


async def test_orders_narrow_by_every_argument_and_page_within_the_filter(
    client: httpx.AsyncClient,
) -> None:
    moutai = "600519.SH"
    buy = await place(client, symbol=moutai, side="BUY", limitPrice="1500.00")
    sell = await place(client, symbol=moutai, side="SELL", limitPrice="1600.00")
    market = await place(client, symbol="601398.SH", side="BUY", limitPrice="6.30", type="LIMIT")
    later = await place(client, symbol="601398.SH", side="BUY", limitPrice="6.40")

    assert await order_ids(client, symbol=moutai.lower()) == [sell["id"], buy["id"]]
    assert await order_ids(client, side="SELL") == [sell["id"]]
    assert await order_ids(client, type="MARKET") == []
    assert await order_ids(client, symbol="601398.SH", type="LIMIT") == [later["id"], market["id"]]
    # the time range is on when the order was accepted: from inclusive, to exclusive
    since_market = await order_ids(client, **{"from": market["createdAt"]})
    assert since_market[-1] == market["id"] and buy["id"] not in since_market
    assert market["id"] not in await order_ids(client, to=market["createdAt"])
    # pages stay inside the filter
    first = await execute(client, ORDERS, {"side": "BUY", "first": 2})
    assert [e["node"]["id"] for e in first["orders"]["edges"]] == [later["id"], market["id"]]
    assert first["orders"]["pageInfo"]["hasNextPage"] is True
    cursor = first["orders"]["pageInfo"]["endCursor"]
    assert await order_ids(client, side="BUY", first=2, after=cursor) == [buy["id"]]


CREATE_STRATEGY = """
mutation {
  createStrategy(input: {name: "cross", kind: SMA_CROSS, symbol: "600519.SH",
                         parameters: {fast: 5, slow: 20}}) { strategy { id } userErrors { code } }
}
"""


async def test_a_strategy_filter_shows_only_that_strategys_orders(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    created = (await execute(client, CREATE_STRATEGY))["createStrategy"]
    assert created["userErrors"] == []
    strategy_id = created["strategy"]["id"]
    manual = await place(client, symbol="600519.SH", side="BUY", limitPrice="1500.00")
    traded = await place(client, symbol="600519.SH", side="BUY", limitPrice="1501.00")
    async with services_of(app).sessions() as session:
        row = await session.get(models.Order, int(traded["id"]))
        assert row is not None
        row.strategy_id = int(strategy_id)  # as the strategy's autoTrade places them
        await session.commit()
    assert await order_ids(client, strategyId=strategy_id) == [traded["id"]]
    assert manual["id"] in await order_ids(client)
    # a strategy id that is not an id is a clear error, nothing internal
    response = await post(client, ORDERS, {"strategyId": "not-an-id"})
    assert error_codes(response) == ["BAD_USER_INPUT"]


async def test_another_users_strategy_matches_nothing(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await place(client, symbol="600519.SH", side="BUY", limitPrice="1500.00")
    async with http_client(app, await user_token(app, "other", Role.TRADER)) as other:
        assert await order_ids(other) == []
    assert await order_ids(client, strategyId="999999") == []


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2026-03-02T00:00:00"}, "from"),
        ({"to": "2026-03-02T00:00:00"}, "to"),
    ],
)
async def test_a_bad_time_range_is_bad_user_input(
    client: httpx.AsyncClient, variables: dict[str, str], argument: str
) -> None:
    for query in (ORDERS, TRADES):
        response = await post(client, query, variables)
        assert error_codes(response) == ["BAD_USER_INPUT"], response
        assert argument in response["errors"][0]["message"]


async def test_trades_narrow_by_symbol_side_and_tick_time(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    placed = await place(client, symbol="600519.SH", side="BUY", limitPrice="1500.00")
    start = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    async with services_of(app).sessions() as session:
        order = await session.get(models.Order, int(placed["id"]))
        assert order is not None
        # fills as the matcher writes them (the fill path is tested on its own)
        fills = [
            ("600519.SH", "BUY", start),
            ("600519.SH", "SELL", start + timedelta(minutes=1)),
            ("601398.SH", "BUY", start + timedelta(minutes=2)),
        ]
        for symbol, side, moment in fills:
            session.add(
                models.Trade(
                    order_id=order.id,
                    user_id=order.user_id,
                    symbol_code=symbol,
                    side=side,
                    quantity=Decimal(100),
                    price=Decimal("1500.00"),
                    commission=Decimal(0),
                    realized_pnl=Decimal(0),
                    tick_time=moment,
                    created_at=moment,
                )
            )
        await session.commit()

    async def fills_of(**variables: object) -> list[tuple[str, str]]:
        data = await execute(client, TRADES, variables)
        edges = data["me"]["account"]["trades"]["edges"]
        return [(e["node"]["symbol"]["code"], e["node"]["side"]) for e in edges]

    assert await fills_of() == [("601398.SH", "BUY"), ("600519.SH", "SELL"), ("600519.SH", "BUY")]
    assert await fills_of(symbol="600519.sh") == [("600519.SH", "SELL"), ("600519.SH", "BUY")]
    assert await fills_of(side="BUY") == [("601398.SH", "BUY"), ("600519.SH", "BUY")]
    window = {"from": (start + timedelta(minutes=1)).isoformat(), "to": "2026-03-02T01:32:00Z"}
    assert await fills_of(**window) == [("600519.SH", "SELL")]
    async with http_client(app, await user_token(app, "someone", Role.TRADER)) as other:
        data = await execute(other, TRADES, {})
        assert data["me"]["account"]["trades"]["edges"] == []


SIGNALS = """
query ($strategyId: ID, $symbol: String, $side: OrderSide, $from: DateTime, $to: DateTime,
       $first: Int, $after: String, $last: Int, $before: String) {
  signals(strategyId: $strategyId, symbol: $symbol, side: $side, from: $from, to: $to,
          first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { node { side barTime strategy { id } symbol { code } } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""


async def test_signals_have_a_connection_of_their_own_with_filters(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    strategy_id = (await execute(client, CREATE_STRATEGY))["createStrategy"]["strategy"]["id"]
    async with http_client(app, await user_token(app, "rival", Role.TRADER)) as rival:
        rivals = (await execute(rival, CREATE_STRATEGY))["createStrategy"]["strategy"]["id"]
    start = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    async with services_of(app).sessions() as session:
        # signals as the strategy engine writes them (the engine is tested on its own)
        for owner, minute, side in [
            (strategy_id, 0, "BUY"),
            (strategy_id, 1, "SELL"),
            (strategy_id, 2, "BUY"),
            (rivals, 3, "BUY"),
        ]:
            session.add(
                models.Signal(
                    strategy_id=int(owner),
                    symbol_code="600519.SH",
                    side=side,
                    price=Decimal("1500.00"),
                    bar_time=start + timedelta(minutes=minute),
                    reason="SMA(5) crossed above SMA(20)",
                    order_id=None,
                    created_at=start,
                )
            )
        await session.commit()

    async def minutes(**variables: object) -> list[tuple[int, str]]:
        edges = (await execute(client, SIGNALS, variables))["signals"]["edges"]
        found = [datetime.fromisoformat(e["node"]["barTime"]) for e in edges]
        sides = [e["node"]["side"] for e in edges]
        assert all(e["node"]["strategy"]["id"] == strategy_id for e in edges)
        return [
            (int((t - start).total_seconds() // 60), s) for t, s in zip(found, sides, strict=True)
        ]

    # newest first, never another user's signal
    assert await minutes() == [(2, "BUY"), (1, "SELL"), (0, "BUY")]
    assert await minutes(side="BUY") == [(2, "BUY"), (0, "BUY")]
    assert await minutes(strategyId=strategy_id, symbol="600519.sh", last=1) == [(0, "BUY")]
    window = {"from": (start + timedelta(minutes=1)).isoformat(), "to": "2026-03-02T01:32:00Z"}
    assert await minutes(**window) == [(1, "SELL")]
    assert await minutes(strategyId=rivals) == []
    counted = (await execute(client, SIGNALS, {"first": 1}))["signals"]
    assert counted["totalCount"] == 3 and counted["pageInfo"]["hasNextPage"] is True
    response = await post(client, SIGNALS, {"strategyId": "x"})
    assert error_codes(response) == ["BAD_USER_INPUT"]
