"""Token buckets weighted by query cost, per user or per IP, in memory or shared in Redis."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.hardening.rate_limits.buckets import BucketSpec, MemoryBuckets
from tests.conftest import http_client, login_token, running_app, user_token
from tests.hardening.conftest import counting_statements, hardened_settings
from tests.support.graphql import Json, error_codes

QUERY_20_SYMBOLS = "{ symbols(first: 20) { edges { node { code } } } }"  # cost 20
MUTATION_PLACE_ORDER = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id } userErrors { code } }
}
"""
ORDER = {
    "symbol": "600519.SH",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "100",
    "limitPrice": "1500.00",
}

ORDER_LITERAL = (
    '{symbol: "600519.SH", side: BUY, type: LIMIT, quantity: "100", limitPrice: "1500.00"}'
)

# Buckets that (practically) do not refill during a test.
TIGHT = {
    "RATE_LIMIT_BURST": 70,
    "RATE_LIMIT_PER_SECOND": 0.001,
    "RATE_LIMIT_ANONYMOUS_BURST": 30,
    "RATE_LIMIT_ANONYMOUS_PER_SECOND": 0.001,
    "PLACE_ORDER_BURST": 2,
    "PLACE_ORDER_PER_SECOND": 0.001,
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return TIGHT


async def post(
    client: httpx.AsyncClient, query: str, variables: Json | None = None
) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables or {}})


async def test_queries_draw_their_cost(trader: httpx.AsyncClient, hardened_app: Starlette) -> None:
    # given: 70 points; each query costs 20
    for _ in range(3):
        response = await post(trader, QUERY_20_SYMBOLS)
        assert "errors" not in response.json()
    # when
    with counting_statements(hardened_app) as statements:
        response = await post(trader, QUERY_20_SYMBOLS)
    # then
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert error_codes(body) == ["RATE_LIMITED"]
    assert body["errors"][0]["extensions"]["retryAfter"] > 0
    assert body["errors"][0]["extensions"]["bucket"] == "user"
    assert statements == []
    # a cheaper query still fits in what is left
    assert "errors" not in (await post(trader, "{ exchanges }")).json()


async def test_anonymous_clients_have_their_own_bucket(
    trader: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    assert "errors" not in (await post(anonymous, QUERY_20_SYMBOLS)).json()
    refused = await post(anonymous, QUERY_20_SYMBOLS)  # 40 > 30
    assert error_codes(refused.json()) == ["RATE_LIMITED"]
    assert refused.json()["errors"][0]["extensions"]["bucket"] == "anonymous"
    assert "errors" not in (await post(trader, QUERY_20_SYMBOLS)).json()


async def test_place_order_has_a_stricter_bucket(trader: httpx.AsyncClient) -> None:
    for _ in range(2):
        body = (await post(trader, MUTATION_PLACE_ORDER, {"input": ORDER})).json()
        assert "errors" not in body, body
    refused = (await post(trader, MUTATION_PLACE_ORDER, {"input": ORDER})).json()
    assert error_codes(refused) == ["RATE_LIMITED"]
    assert refused["errors"][0]["extensions"]["bucket"] == "placeOrder"
    assert refused["data"] is None
    # other operations are not held up
    assert "errors" not in (await post(trader, "{ exchanges }")).json()


async def test_aliased_orders_count_one_each(sqlite_url: str) -> None:
    settings = hardened_settings(sqlite_url, **{**TIGHT, "PLACE_ORDER_BURST": 3})
    two_orders = (
        "mutation ($i: PlaceOrderInput!) { a: placeOrder(input: $i) { order { id } } "
        "b: placeOrder(input: $i) { order { id } } }"
    )
    async with running_app(settings) as app:
        token = await login_token(app)
        async with http_client(app, token) as http:
            assert "errors" not in (await post(http, two_orders, {"i": ORDER})).json()
            refused = (await post(http, two_orders, {"i": ORDER})).json()  # 4 > 3
            assert error_codes(refused) == ["RATE_LIMITED"]


async def test_place_orders_draws_one_point_per_order(sqlite_url: str) -> None:
    # the user's own bucket is roomy here: only the order bucket is under test
    overrides = {**TIGHT, "PLACE_ORDER_BURST": 5, "RATE_LIMIT_BURST": 10_000}
    settings = hardened_settings(sqlite_url, **overrides)
    batch = (
        "mutation ($inputs: [PlaceOrderInput!]!) { placeOrders(inputs: $inputs) { order { id } } }"
    )
    two = f"[{ORDER_LITERAL}, {ORDER_LITERAL}]"
    inline = f"mutation {{ placeOrders(inputs: {two}) {{ order {{ id }} }} }}"
    async with running_app(settings) as app:
        token = await login_token(app)
        async with http_client(app, token) as http:
            body = (await post(http, batch, {"inputs": [ORDER] * 3})).json()
            assert "errors" not in body, body
            assert len(body["data"]["placeOrders"]) == 3
            refused = (await post(http, inline)).json()  # 3 + 2 = 5: fits
            assert "errors" not in refused, refused
            refused = (await post(http, batch, {"inputs": [ORDER]})).json()  # 6 > 5
            assert error_codes(refused) == ["RATE_LIMITED"]
            assert refused["errors"][0]["extensions"]["bucket"] == "placeOrder"


async def test_limits_hold_across_processes_through_redis(sqlite_url: str, redis_url: str) -> None:
    # given: two app instances (two server processes) sharing one Redis
    settings = hardened_settings(
        sqlite_url, REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"test-{uuid.uuid4().hex}:", **TIGHT
    )
    async with running_app(settings) as first, running_app(settings) as second:
        token = await login_token(first)
        async with http_client(first, token) as one, http_client(second, token) as other:
            # when: the user spends 60 of 70 points on the first
            for _ in range(3):
                assert "errors" not in (await post(one, QUERY_20_SYMBOLS)).json()
            # then: the second knows
            refused = await post(other, QUERY_20_SYMBOLS)
            assert error_codes(refused.json()) == ["RATE_LIMITED"]
            assert first.state.hardening.limiter.shared


def test_memory_bucket_refills() -> None:
    now = [0.0]
    buckets = MemoryBuckets(clock=lambda: now[0])
    spec = BucketSpec("t", burst=10, per_second=2)
    assert buckets.take("k", spec, 10).allowed
    refused = buckets.take("k", spec, 4)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(2.0)
    now[0] = 2.0
    assert buckets.take("k", spec, 4).allowed


async def test_exempt_roles_are_not_limited(hardened_app: Starlette) -> None:
    token = await user_token(hardened_app, "feeder", Role.FEED)
    async with http_client(hardened_app, token) as feed:
        for _ in range(5):  # 100 points against a 70-point bucket
            assert "errors" not in (await post(feed, QUERY_20_SYMBOLS)).json()


async def test_place_order_in_a_fragment_draws_from_its_bucket(trader: httpx.AsyncClient) -> None:
    # given: two orders spread through a fragment (they used to be uncounted)
    mutation = (
        "mutation ($i: PlaceOrderInput!) { ...Orders } "
        "fragment Orders on Mutation { a: placeOrder(input: $i) { order { id } } "
        "... on Mutation { b: placeOrder(input: $i) { order { id } } } }"
    )
    assert "errors" not in (await post(trader, mutation, {"i": ORDER})).json()
    # when
    refused = (await post(trader, mutation, {"i": ORDER})).json()
    # then: 4 > PLACE_ORDER_BURST (2)
    assert error_codes(refused) == ["RATE_LIMITED"]
    assert refused["errors"][0]["extensions"]["bucket"] == "placeOrder"
