"""placeOrder / cancelOrder / ingestTicks: validation, idempotency, and no partial writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.services import Services
from storage import models
from storage.engine import create_engine
from tests.conftest import http_client, user_token
from tests.support.graphql import error_codes, execute, post

MUTATION_PLACE_ORDER = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id status side type quantity limitPrice clientOrderId symbol { code } }
    userErrors { field code message }
  }
}
"""

MUTATION_CANCEL_ORDER = """
mutation ($id: ID!) {
  cancelOrder(id: $id) { order { id status } userErrors { field code message } }
}
"""

MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!) {
  ingestTicks(ticks: $ticks) { accepted userErrors { field code message } }
}
"""


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def count(app: Starlette, model: type[models.Base]) -> int:
    async with services_of(app).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def limit_buy(**overrides: object) -> dict[str, object]:
    order: dict[str, object] = {
        "symbol": "600519.SH",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "100",
        "limitPrice": "1500.00",
    }
    order.update(overrides)
    return order


async def test_place_limit_order_stores_a_new_order(client: httpx.AsyncClient) -> None:
    data = await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy()})
    payload = data["placeOrder"]
    assert payload["userErrors"] == []
    order = payload["order"]
    assert order["status"] == "NEW"
    assert (order["quantity"], order["limitPrice"]) == ("100", "1500.00")
    assert order["symbol"]["code"] == "600519.SH"
    fetched = await execute(
        client, "query ($id: ID!) { order(id: $id) { id status } }", {"id": order["id"]}
    )
    assert fetched["order"] == {"id": order["id"], "status": "NEW"}


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"symbol": "NOPE.SH"}, "symbol", "UNKNOWN_SYMBOL"),
        ({"quantity": "0"}, "quantity", "OUT_OF_RANGE"),
        ({"quantity": "-100"}, "quantity", "OUT_OF_RANGE"),
        ({"quantity": "150"}, "quantity", "INVALID_PRECISION"),
        ({"quantity": "100.5"}, "quantity", "INVALID_PRECISION"),
        ({"limitPrice": "1500.001"}, "limitPrice", "INVALID_PRECISION"),
        ({"limitPrice": "-1.00"}, "limitPrice", "OUT_OF_RANGE"),
        ({"limitPrice": None}, "limitPrice", "REQUIRED"),
        ({"type": "MARKET"}, "limitPrice", "NOT_ALLOWED"),
        ({"quantity": "99999999999999999999"}, "quantity", "INVALID_PRECISION"),
        ({"clientOrderId": "x" * 65}, "clientOrderId", "OUT_OF_RANGE"),
    ],
)
async def test_invalid_orders_get_user_errors_and_write_nothing(
    client: httpx.AsyncClient,
    app: Starlette,
    overrides: dict[str, object],
    field: str,
    code: str,
) -> None:
    # when placing a malformed order
    data = await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy(**overrides)})
    # then it is refused with a typed error naming the field, and no row exists
    payload = data["placeOrder"]
    assert payload["order"] is None
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in payload["userErrors"]
    ]
    assert await count(app, models.Order) == 0


async def test_unknown_enum_and_bad_decimal_are_graphql_errors(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    body = await post(client, MUTATION_PLACE_ORDER, {"input": limit_buy(side="HOLD")})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    for bad in ("ten", "1e5", "NaN", "Infinity", 100, 1.5, ""):
        body = await post(client, MUTATION_PLACE_ORDER, {"input": limit_buy(quantity=bad)})
        assert error_codes(body) == ["BAD_USER_INPUT"], bad
    assert await count(app, models.Order) == 0


async def test_client_order_id_makes_placement_idempotent(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    first = await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy(clientOrderId="abc-1")})
    again = await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy(clientOrderId="abc-1")})
    assert again["placeOrder"]["order"]["id"] == first["placeOrder"]["order"]["id"]
    conflict = await execute(
        client, MUTATION_PLACE_ORDER, {"input": limit_buy(clientOrderId="abc-1", quantity="200")}
    )
    assert conflict["placeOrder"]["order"] is None
    assert [e["code"] for e in conflict["placeOrder"]["userErrors"]] == ["CONFLICT"]
    assert await count(app, models.Order) == 1


MUTATION_PLACE_ORDERS = """
mutation ($inputs: [PlaceOrderInput!]!) {
  placeOrders(inputs: $inputs) {
    order { id status rejectReason clientOrderId }
    userErrors { field code }
  }
}
"""


async def test_place_orders_answers_each_input_in_order(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    inputs = [
        limit_buy(clientOrderId="batch-1"),
        limit_buy(quantity="150"),  # not a whole lot: fails alone
        limit_buy(clientOrderId="batch-1"),  # the same request again: the same order
        limit_buy(quantity="10000"),  # 15,004,500 CNY: over the notional cap, REJECTED
        limit_buy(clientOrderId="batch-2"),
    ]
    payloads = (await execute(client, MUTATION_PLACE_ORDERS, {"inputs": inputs}))["placeOrders"]
    assert [p["order"]["status"] if p["order"] else None for p in payloads] == [
        "NEW",
        None,
        "NEW",
        "REJECTED",
        "NEW",
    ]
    assert payloads[1]["userErrors"] == [{"field": "quantity", "code": "INVALID_PRECISION"}]
    assert payloads[2]["order"]["id"] == payloads[0]["order"]["id"]
    assert payloads[3]["order"]["rejectReason"] == "MAX_NOTIONAL_EXCEEDED"
    assert await count(app, models.Order) == 3


@pytest.mark.parametrize("size", [0, 101])
async def test_place_orders_takes_one_to_a_hundred(
    client: httpx.AsyncClient, app: Starlette, size: int
) -> None:
    body = await post(client, MUTATION_PLACE_ORDERS, {"inputs": [limit_buy()] * size})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await count(app, models.Order) == 0


async def test_cancel_order_once_then_a_clear_error(client: httpx.AsyncClient) -> None:
    placed = await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy()})
    order_id = placed["placeOrder"]["order"]["id"]
    first = await execute(client, MUTATION_CANCEL_ORDER, {"id": order_id})
    assert first["cancelOrder"] == {
        "order": {"id": order_id, "status": "CANCELED"},
        "userErrors": [],
    }
    second = await execute(client, MUTATION_CANCEL_ORDER, {"id": order_id})
    assert [e["code"] for e in second["cancelOrder"]["userErrors"]] == ["NOT_CANCELABLE"]
    missing = await execute(client, MUTATION_CANCEL_ORDER, {"id": "999999"})
    assert [e["code"] for e in missing["cancelOrder"]["userErrors"]] == ["NOT_FOUND"]
    body = await post(client, MUTATION_CANCEL_ORDER, {"id": "abc"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


MUTATION_CANCEL_ALL = """
mutation ($symbol: String) {
  cancelAllOrders(symbol: $symbol) {
    orders { id status } count userErrors { field code }
  }
}
"""


async def test_cancel_all_orders_of_a_symbol_then_the_rest_and_never_anothers(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    # given two open orders on one symbol and one on another
    ids = [
        (await execute(client, MUTATION_PLACE_ORDER, {"input": order}))["placeOrder"]["order"]["id"]
        for order in (
            limit_buy(),
            limit_buy(limitPrice="1490.00"),
            limit_buy(symbol="BTCUSDT", quantity="0.1", limitPrice="95000.00"),
        )
    ]
    # when another user cancels all of theirs, nothing of the demo user's moves
    async with http_client(app, await user_token(app, "bob", Role.TRADER)) as bob:
        theirs = await execute(bob, MUTATION_CANCEL_ALL)
    assert theirs["cancelAllOrders"] == {"orders": [], "count": 0, "userErrors": []}
    # and an unknown symbol is the API's usual typed error
    unknown = await execute(client, MUTATION_CANCEL_ALL, {"symbol": "NOPE.SH"})
    assert unknown["cancelAllOrders"] == {
        "orders": [],
        "count": 0,
        "userErrors": [{"field": "symbol", "code": "UNKNOWN_SYMBOL"}],
    }
    # when the user cancels one symbol's orders (spelled in any case), then the rest
    first = await execute(client, MUTATION_CANCEL_ALL, {"symbol": "600519.sh"})
    rest = await execute(client, MUTATION_CANCEL_ALL)
    # then each call cancels what it names, once
    assert first["cancelAllOrders"] == {
        "orders": [{"id": ids[0], "status": "CANCELED"}, {"id": ids[1], "status": "CANCELED"}],
        "count": 2,
        "userErrors": [],
    }
    assert rest["cancelAllOrders"]["orders"] == [{"id": ids[2], "status": "CANCELED"}]
    again = await execute(client, MUTATION_CANCEL_ALL)
    assert again["cancelAllOrders"]["count"] == 0


MUTATION_AMEND = """
mutation ($id: ID!, $limitPrice: Decimal, $quantity: Decimal) {
  amendOrder(id: $id, limitPrice: $limitPrice, quantity: $quantity) {
    order { id status quantity limitPrice } userErrors { field code }
  }
}
"""


async def test_amend_order_changes_price_and_quantity_of_your_own_order_only(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    placed = await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy(quantity="300")})
    order_id = placed["placeOrder"]["order"]["id"]
    smaller = await execute(client, MUTATION_AMEND, {"id": order_id, "quantity": "200"})
    assert smaller["amendOrder"] == {
        "order": {"id": order_id, "status": "NEW", "quantity": "200", "limitPrice": "1500.00"},
        "userErrors": [],
    }
    repriced = await execute(
        client, MUTATION_AMEND, {"id": order_id, "limitPrice": "1490.00", "quantity": "100"}
    )
    assert repriced["amendOrder"]["order"]["limitPrice"] == "1490.00"
    assert repriced["amendOrder"]["order"]["quantity"] == "100"
    too_dear = await execute(client, MUTATION_AMEND, {"id": order_id, "quantity": "1000"})
    assert too_dear["amendOrder"]["userErrors"] == [
        {"field": "quantity", "code": "INSUFFICIENT_BUYING_POWER"}
    ]
    assert too_dear["amendOrder"]["order"]["quantity"] == "100"
    async with http_client(app, await user_token(app, "bob", Role.TRADER)) as bob:
        theirs = await execute(bob, MUTATION_AMEND, {"id": order_id, "quantity": "100"})
    assert theirs["amendOrder"] == {
        "order": None,
        "userErrors": [{"field": "id", "code": "NOT_FOUND"}],
    }
    body = await post(client, MUTATION_AMEND, {"id": "abc", "quantity": "100"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_every_order_shows_when_it_expires(client: httpx.AsyncClient) -> None:
    query = """
    mutation ($input: PlaceOrderInput!) {
      placeOrder(input: $input) { order { timeInForce expiresAt } userErrors { field code } }
    }
    """
    gtc = await execute(client, query, {"input": limit_buy()})
    day = await execute(client, query, {"input": limit_buy(timeInForce="DAY")})
    gtd = await execute(
        client,
        query,
        {"input": limit_buy(timeInForce="GTD", expiresAt="2099-01-02T15:00:00+08:00")},
    )
    fok = await execute(client, query, {"input": limit_buy(timeInForce="FOK")})
    past = await execute(
        client, query, {"input": limit_buy(timeInForce="GTD", expiresAt="2020-01-01T00:00:00Z")}
    )
    assert gtc["placeOrder"]["order"] == {"timeInForce": "GTC", "expiresAt": None}
    # A-shares close at 15:00 Beijing, 07:00 UTC
    day_expiry = datetime.fromisoformat(day["placeOrder"]["order"]["expiresAt"])
    assert (day_expiry.utcoffset(), day_expiry.hour, day_expiry.minute) == (timedelta(0), 7, 0)
    assert gtd["placeOrder"]["order"] == {
        "timeInForce": "GTD",
        "expiresAt": "2099-01-02T07:00:00+00:00",
    }
    assert fok["placeOrder"]["order"] == {"timeInForce": "FOK", "expiresAt": None}
    assert past["placeOrder"] == {
        "order": None,
        "userErrors": [{"field": "expiresAt", "code": "OUT_OF_RANGE"}],
    }


async def test_a_stop_limit_order_shows_its_stop_and_waits_for_its_trigger(
    client: httpx.AsyncClient,
) -> None:
    query = """
    mutation ($input: PlaceOrderInput!) {
      placeOrder(input: $input) {
        order { type status limitPrice stopPrice triggeredAt } userErrors { field code }
      }
    }
    """
    placed = await execute(
        client,
        query,
        {"input": limit_buy(type="STOP_LIMIT", stopPrice="1550.00", limitPrice="1555.00")},
    )
    assert placed["placeOrder"] == {
        "order": {
            "type": "STOP_LIMIT",
            "status": "NEW",
            "limitPrice": "1555.00",
            "stopPrice": "1550.00",
            "triggeredAt": None,
        },
        "userErrors": [],
    }
    missing = await execute(client, query, {"input": limit_buy(type="STOP")})
    assert {"field": "stopPrice", "code": "REQUIRED"} in missing["placeOrder"]["userErrors"]


async def test_orders_filter_and_paginate(client: httpx.AsyncClient) -> None:
    for price in ("1500.00", "1501.00", "1502.00"):
        await execute(client, MUTATION_PLACE_ORDER, {"input": limit_buy(limitPrice=price)})
    await execute(
        client,
        MUTATION_PLACE_ORDER,
        {"input": {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.5"}},
    )
    query = """
    query ($after: String, $symbol: String) {
      orders(first: 2, after: $after, symbol: $symbol, status: [NEW]) {
        edges { node { id limitPrice symbol { code } } }
        pageInfo { hasNextPage endCursor }
      }
    }
    """
    page1 = (await execute(client, query, {"symbol": "600519.SH"}))["orders"]
    assert [e["node"]["limitPrice"] for e in page1["edges"]] == ["1502.00", "1501.00"]
    assert page1["pageInfo"]["hasNextPage"] is True
    page2 = (
        await execute(
            client, query, {"symbol": "600519.SH", "after": page1["pageInfo"]["endCursor"]}
        )
    )["orders"]
    assert [e["node"]["limitPrice"] for e in page2["edges"]] == ["1500.00"]
    assert page2["pageInfo"]["hasNextPage"] is False


def tick(**overrides: object) -> dict[str, object]:
    value: dict[str, object] = {
        "symbol": "BTCUSDT",
        "time": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "last": "95000.10",
        "bid": "95000.00",
        "ask": "95000.20",
        "volume": "0.5",
    }
    value.update(overrides)
    return value


async def test_ingest_ticks_stores_them_all(feed_client: httpx.AsyncClient, app: Starlette) -> None:
    data = await execute(feed_client, MUTATION_INGEST, {"ticks": [tick(), tick(last="95001.00")]})
    assert data["ingestTicks"] == {"accepted": 2, "userErrors": []}
    assert await count(app, models.TickRow) == 2


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        ({"last": "0"}, "ticks.1.last", "OUT_OF_RANGE"),
        ({"last": "-5.00"}, "ticks.1.last", "OUT_OF_RANGE"),
        ({"bid": "95000.001"}, "ticks.1.bid", "INVALID_PRECISION"),
        ({"symbol": "NOPE"}, "ticks.1.symbol", "UNKNOWN_SYMBOL"),
        ({"time": "2099-01-01T00:00:00Z"}, "ticks.1.time", "OUT_OF_RANGE"),
        ({"bid": "95002.00"}, "ticks.1.bid", "INVALID"),
        ({"volume": "-1"}, "ticks.1.volume", "OUT_OF_RANGE"),
    ],
)
async def test_one_bad_tick_rejects_the_whole_batch(
    feed_client: httpx.AsyncClient, app: Starlette, bad: dict[str, object], field: str, code: str
) -> None:
    data = await execute(feed_client, MUTATION_INGEST, {"ticks": [tick(), tick(**bad), tick()]})
    payload = data["ingestTicks"]
    assert payload["accepted"] == 0
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in payload["userErrors"]
    ]
    assert await count(app, models.TickRow) == 0


async def test_internal_errors_are_masked_with_a_request_id(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a resolver that fails with a bug's exception, carrying internals (one the
    # compiled read path never calls: it answers `symbol` without resolvers)
    async def broken(info: object) -> None:
        raise RuntimeError("secret: password=hunter2 at /srv/app.py")

    monkeypatch.setattr("resolvers.market.exchanges", broken)
    # when a query needs it
    response = await client.post(
        "/graphql",
        json={"query": "{ exchanges }"},
        headers={"x-request-id": "req-123"},
    )
    # then the client sees a generic message with the request id, no internals
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}


async def test_an_unreachable_database_is_a_clear_retryable_error(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    # given a database that has gone away under the server
    unreachable = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/gone")
    services_of(app).sessions.configure(bind=unreachable)
    # when a query needs it
    response = await client.post(
        "/graphql",
        json={"query": '{ symbol(code: "BTCUSDT") { name } }'},
        headers={"x-request-id": "req-124"},
    )
    # then it says the database is unavailable, without the driver's internals
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["requestId"] == "req-124"
    assert "database" in error["message"]
    assert "127.0.0.1" not in response.text and "asyncpg" not in response.text
