"""Connections page both ways (``first``/``after`` and ``last``/``before``) and count.

Every page size in both directions must walk the same list the one-page read
shows, with ``hasNextPage``/``hasPreviousPage`` true exactly where items remain.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.auth import Role
from tests.conftest import http_client, user_token
from tests.support.graphql import error_codes, execute, post

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id } userErrors { code message } }
}
"""
ORDERS = """
query ($side: OrderSide, $first: Int, $after: String, $last: Int, $before: String) {
  orders(side: $side, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
ORDERS_BACKWARD = """
query ($side: OrderSide, $last: Int, $before: String) {
  orders(side: $side, last: $last, before: $before) {
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
SYMBOLS = """
query ($last: Int, $before: String) {
  symbols(last: $last, before: $before) {
    totalCount
    edges { node { code } }
    pageInfo { hasNextPage hasPreviousPage startCursor }
  }
}
"""


async def place_orders(client: httpx.AsyncClient, count: int) -> list[str]:
    """``count`` resting buy orders; their ids newest first (the list's order)."""
    ids = []
    for index in range(count):
        order = {
            "symbol": "600519.SH",
            "side": "BUY" if index % 3 else "SELL",
            "type": "LIMIT",
            "quantity": "100",
            "limitPrice": "1000.00" if index % 3 else "9000.00",
        }
        payload = (await execute(client, PLACE, {"input": order}))["placeOrder"]
        assert payload["userErrors"] == [], payload
        ids.append(payload["order"]["id"])
    return ids[::-1]


async def page(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    connection: dict[str, Any] = (await execute(client, query, variables))["orders"]
    return connection


def ids_of(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def test_every_page_size_walks_the_same_list_forward_and_backward(
    client: httpx.AsyncClient,
) -> None:
    everything = await place_orders(client, 7)
    assert ids_of(await page(client, ORDERS, first=50)) == everything
    for size in range(1, 9):
        # forward: first/after, following endCursor
        walked: list[str] = []
        cursor = None
        while True:
            found = await page(client, ORDERS, first=size, after=cursor)
            info = found["pageInfo"]
            walked += ids_of(found)
            assert found["totalCount"] == 7
            assert info["hasPreviousPage"] is (cursor is not None)
            assert info["hasNextPage"] is (len(walked) < 7)
            if not info["hasNextPage"]:
                break
            cursor = info["endCursor"]
        assert walked == everything, size
        # backward: last/before, following startCursor, each page in list order
        pages: list[list[str]] = []
        cursor = None
        while True:
            found = await page(client, ORDERS_BACKWARD, last=size, before=cursor)
            info = found["pageInfo"]
            pages.insert(0, ids_of(found))
            seen = sum(len(ids) for ids in pages)
            assert info["hasNextPage"] is (cursor is not None)
            assert info["hasPreviousPage"] is (seen < 7)
            assert info["startCursor"] == found["edges"][0]["cursor"]
            if not info["hasPreviousPage"]:
                break
            cursor = info["startCursor"]
        assert [order for ids in pages for order in ids] == everything, size


async def test_a_window_between_two_cursors_and_counts_under_a_filter(
    client: httpx.AsyncClient,
) -> None:
    everything = await place_orders(client, 6)
    edges = (await page(client, ORDERS, first=6))["edges"]
    # after the first item and before the last: the four between, from either end
    bounds = {"after": edges[0]["cursor"], "before": edges[5]["cursor"]}
    between = await page(client, ORDERS, first=10, **bounds)
    assert ids_of(between) == everything[1:5]
    assert between["pageInfo"]["hasNextPage"] is True  # the item at `before` follows
    assert between["pageInfo"]["hasPreviousPage"] is True
    tail = await page(client, ORDERS, last=2, **bounds)
    assert ids_of(tail) == everything[3:5]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    # totalCount counts the filtered list, not the page
    sells = await page(client, ORDERS, side="SELL", first=1)
    assert sells["totalCount"] == 2 and len(sells["edges"]) == 1


async def test_symbols_page_backward_from_the_end_of_the_code_order(
    client: httpx.AsyncClient,
) -> None:
    every = (await execute(client, SYMBOLS, {"last": 100}))["symbols"]
    codes = [edge["node"]["code"] for edge in every["edges"]]
    assert codes == sorted(codes) and every["totalCount"] == len(codes) >= 3
    tail = (await execute(client, SYMBOLS, {"last": 2}))["symbols"]
    assert [edge["node"]["code"] for edge in tail["edges"]] == codes[-2:]
    before = await execute(client, SYMBOLS, {"last": 1, "before": tail["pageInfo"]["startCursor"]})
    assert [edge["node"]["code"] for edge in before["symbols"]["edges"]] == [codes[-3]]


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"first": 2, "last": 2}, "last"),
        ({"last": 0}, "last"),
        ({"last": 100000}, "last"),
        ({"last": 2, "before": "not-a-cursor"}, "before"),
        ({"last": 2, "before": "c3ltYm9sOjYwMDUxOS5TSA=="}, "before"),  # a symbol's cursor
    ],
)
async def test_bad_paging_arguments_are_bad_user_input(
    client: httpx.AsyncClient, variables: dict[str, Any], argument: str
) -> None:
    response = await post(client, ORDERS, variables)
    assert error_codes(response) == ["BAD_USER_INPUT"], response
    assert argument in response["errors"][0]["message"]


async def test_another_users_orders_are_not_counted(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await place_orders(client, 3)
    async with http_client(app, await user_token(app, "other", Role.TRADER)) as other:
        found = await page(other, ORDERS_BACKWARD, last=5)
    assert found["totalCount"] == 0 and found["edges"] == []
    assert found["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }
