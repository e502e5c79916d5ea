"""Query limits refuse expensive documents before any resolver runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import parse
from starlette.applications import Starlette

from graphql_api.hardening.query_limits.guard import operation_cost
from schema import schema as plain_schema
from tests.conftest import http_client, running_app
from tests.hardening.conftest import counting_statements, hardened_settings
from tests.support.graphql import error_codes, post

QUERY_ORDERS_WITH_FILLS = """
query Orders($first: Int!) {
  orders(first: $first) { edges { node { id fills { price } } } pageInfo { hasNextPage } }
}
"""

# orders > edges > node > strategy > orders > … : 13 levels, one past the default 12.
QUERY_TOO_DEEP = (
    "{ orders { edges { node { strategy { orders { strategy { orders { strategy { orders "
    "{ strategy { orders { strategy { orders { id } } } } } } } } } } } } } }"
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"QUERY_MAX_COST": 2000}


async def test_too_deep_is_refused_without_touching_the_database(
    trader: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    # when
    with counting_statements(hardened_app) as statements:
        body = await post(trader, QUERY_TOO_DEEP)
    # then: (so deep a document is also far too expensive)
    assert error_codes(body) == ["QUERY_TOO_DEEP", "QUERY_TOO_COMPLEX"]
    assert body["data"] is None
    assert statements == []


async def test_too_many_aliases(trader: httpx.AsyncClient, hardened_app: Starlette) -> None:
    query = "{ " + " ".join(f"a{i}: orders {{ edges {{ cursor }} }}" for i in range(31)) + " }"
    with counting_statements(hardened_app) as statements:
        body = await post(trader, query)
    assert error_codes(body) == ["TOO_MANY_ALIASES"]
    assert statements == []


async def test_too_many_tokens(trader: httpx.AsyncClient, hardened_app: Starlette) -> None:
    query = "{ " + "exchanges " * 6000 + "}"
    with counting_statements(hardened_app) as statements:
        body = await post(trader, query)
    assert error_codes(body) == ["TOO_MANY_TOKENS"]
    assert body["errors"][0]["extensions"]["maximumTokens"] == 5000
    assert statements == []


async def test_cost_multiplies_page_sizes_through_nesting(
    trader: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    # given: 100 orders, each with a list of (by default) 20 fills, and pageInfo
    # when
    with counting_statements(hardened_app) as statements:
        body = await post(trader, QUERY_ORDERS_WITH_FILLS, {"first": 100})
    # then
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    error = body["errors"][0]
    assert error["extensions"]["cost"] == 100 + 100 * 20 + 1
    assert error["extensions"]["maximumCost"] == 2000
    assert statements == []


async def test_cost_is_reported_with_the_result(trader: httpx.AsyncClient) -> None:
    body = await post(trader, QUERY_ORDERS_WITH_FILLS, {"first": 10})
    assert "errors" not in body
    assert body["extensions"]["cost"] == {"requested": 10 + 10 * 20 + 1, "maximum": 2000}


def test_cost_model() -> None:
    def cost(query: str, variables: dict[str, Any] | None = None) -> int:
        return operation_cost(plain_schema._schema, parse(query), None, variables or {})

    assert cost("{ exchanges }") == 0  # scalars are free
    assert cost("{ me { username } }") == 1  # an object is 1
    assert cost("{ symbols { edges { node { code } } } }") == 20  # the default page
    assert cost("{ symbols(first: 5) { edges { node { dailyBars { close } } } } }") == 5 + 5 * 30
    assert cost('{ klines(symbol: "X", interval: MINUTE_1, limit: 7) { close } }') == 7
    assert cost("query($n: Int! = 3) { symbols(first: $n) { edges { cursor } } }") == 3
    # fragments count where they are spread
    query = (
        "{ symbols(first: 4) { edges { node { ...F } } } } fragment F on Symbol { quote { last } }"
    )
    assert cost(query) == 4 + 4


async def test_introspection_can_be_disabled(sqlite_url: str) -> None:
    settings = hardened_settings(sqlite_url, INTROSPECTION=False)
    async with running_app(settings) as app, http_client(app, None) as http:
        body = await post(http, "{ __schema { types { name } } }")
        assert set(error_codes(body)) == {"INTROSPECTION_DISABLED"}
        body = await post(http, "{ exchanges __typename }")
        assert "errors" not in body
