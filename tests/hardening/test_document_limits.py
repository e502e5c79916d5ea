"""Documents that expand (fragments), repeat (overlapping fields) or introspect
are refused with a limit code after a bounded amount of work, over HTTP and
WebSocket; several operations need a name; WebSocket messages obey the body limit.

Work is counted in Python calls (:mod:`tests.support.work`), never in seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import (
    get_introspection_query,
    parse,
)
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.hostile_documents import aliased_introspection
from graphql_api.hardening.query_limits.cost import operation_cost
from graphql_api.hardening.query_limits.guard import OVERLAP_BUDGET
from schema import schema as plain_schema
from tests.conftest import live_server
from tests.hardening.conftest import counting_statements, hardened_settings
from tests.support.graphql import WsClient, error_codes
from tests.support.work import call_budget

GRAPHQL_RESPONSE = "application/graphql-response+json"
# A refusal before validation: a few thousand calls (parsing 5,000 tokens: 250,000).
REFUSAL_CALLS = 300_000
INTROSPECTION = get_introspection_query(descriptions=True)


def fragment_bomb(
    levels: int,
    body: str = "exchanges",
    spread: str = "...F# ...F#",
    on: str = "Query",
    operation: str = "query",
) -> str:
    """Each fragment spreads the next one (``F#``) twice: 2^levels copies of ``body``."""
    fragments = [
        f"fragment F{i} on {on} {{ {spread.replace('#', str(i + 1))} }}" for i in range(levels)
    ]
    fragments.append(f"fragment F{levels} on {on} {{ {body} }}")
    return f"{operation} {{ ...F0 }}\n" + "\n".join(fragments)


BOMBS = {
    "scalars": fragment_bomb(30),
    "objects": fragment_bomb(30, "me { username }", "me { username } ...F# ...F#"),
    "aliases": fragment_bomb(30, "e: exchanges", "a: exchanges ...F# ...F#"),
    "inline": fragment_bomb(30, "exchanges", "... on Query { ...F# } ...F#"),
    "lists": fragment_bomb(20, "symbols { edges { node { code } } }", "...F# ...F#"),
}
TICKS_BOMB = fragment_bomb(
    30, 'ticks(symbols: ["BTCUSDT"]) { last }', on="Subscription", operation="subscription"
)


async def post(client: httpx.AsyncClient, query: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query, **extra},
        headers={"accept": GRAPHQL_RESPONSE},
    )


@pytest.mark.parametrize("shape", list(BOMBS))
async def test_fragment_bombs_are_refused_with_bounded_work(
    anonymous: httpx.AsyncClient, hardened_app: Starlette, shape: str
) -> None:
    # given: 1.2 KB that stands for 2^30 fields (the depth rule and the cost
    # walker used to follow every spread: minutes of CPU)
    query = BOMBS[shape]
    # when
    with counting_statements(hardened_app) as statements, call_budget(REFUSAL_CALLS):
        response = await post(anonymous, query)
    # then
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert "QUERY_TOO_COMPLEX" in error_codes(body)
    assert "INTERNAL_SERVER_ERROR" not in error_codes(body)
    assert statements == []
    assert (await anonymous.get("/healthz")).status_code == 200


async def test_repeated_fields_are_refused_before_the_overlap_check_runs_away(
    anonymous: httpx.AsyncClient,
) -> None:
    # given: 300 copies of one field with a selection (graphql-core compares
    # every pair: 0.7 s of CPU, and the document was answered)
    query = "{ " + "me { username } " * 300 + "}"
    # when
    with call_budget(REFUSAL_CALLS):
        response = await post(anonymous, query)
    # then
    assert response.status_code == 400
    body = response.json()
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["maximumComparisons"] == OVERLAP_BUDGET
    # a field repeated as fragments colocated on one selection repeat it is answered
    repeated = await post(anonymous, "{ " + "me { username } " * 15 + "}")
    assert error_codes(repeated.json()) == ["UNAUTHENTICATED"]


async def test_depth_is_measured_through_fragments(anonymous: httpx.AsyncClient) -> None:
    # orders > edges > node > strategy > orders …: 15 object levels, cut into fragments
    query = (
        "{ orders { ...Edges } } "
        "fragment Edges on OrderConnection { edges { node { strategy { ...Deeper } } } } "
        "fragment Deeper on Strategy { orders { edges { node { strategy { orders { edges "
        "{ node { strategy { orders { edges { node { id } } } } } } } } } } } }"
    )
    body = (await post(anonymous, query)).json()
    assert error_codes(body)[0] == "QUERY_TOO_DEEP"
    assert body["errors"][0]["extensions"]["depth"] == 15


def test_cost_of_introspection() -> None:
    def cost(query: str) -> int:
        return operation_cost(plain_schema._schema, parse(query), None, {})

    one = cost(INTROSPECTION)
    aliased = cost(aliased_introspection(30))
    assert 1000 < one < 10_000  # about as many objects as the answer holds (1,281)
    assert aliased == 30 * one > 10_000
    assert cost("{ __typename }") == 0
    assert cost("{ __schema { types { name } } }") == 1 + len(plain_schema._schema.type_map)


async def test_aliased_introspection_is_refused_by_cost(anonymous: httpx.AsyncClient) -> None:
    # given: thirty introspections of every type's fields, aliased
    query = (
        "{"
        + " ".join(
            f"a{i}: __schema {{ types {{ name fields {{ name type {{ name }} }} }} }}"
            for i in range(30)
        )
        + "}"
    )
    # when
    with call_budget(REFUSAL_CALLS):
        response = await post(anonymous, query)
    # then
    body = response.json()
    assert response.status_code == 400
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] > 10_000


async def test_one_graphiql_introspection_passes(anonymous: httpx.AsyncClient) -> None:
    body = (await post(anonymous, INTROSPECTION)).json()
    assert "errors" not in body, body["errors"]
    assert 1000 < body["extensions"]["cost"]["requested"] < 10_000


async def test_several_operations_without_a_name_are_a_request_error(
    anonymous: httpx.AsyncClient,
) -> None:
    query = "query A { exchanges } query B { __typename }"
    response = await post(anonymous, query)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["OPERATION_RESOLUTION_FAILURE"]
    assert "Must provide operation name" in body["errors"][0]["message"]
    # named, the chosen one runs
    named = (await post(anonymous, query, operationName="B")).json()
    assert named["data"] == {"__typename": "Query"}


@pytest.fixture
async def ws_server(sqlite_url: str) -> AsyncIterator[tuple[str, Starlette]]:
    async with live_server(hardened_settings(sqlite_url, MAX_BODY_BYTES=4096)) as running:
        yield running


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_refuses_bombs_and_unnamed_operations(
    ws_server: tuple[str, Starlette], protocol: str
) -> None:
    address, _app = ws_server
    client = await WsClient.open(f"ws://{address}/graphql", protocol=protocol)
    try:
        cases = {
            TICKS_BOMB: "QUERY_TOO_COMPLEX",
            'subscription A { ticks(symbols: ["BTCUSDT"]) { last } } '
            'subscription B { ticks(symbols: ["BTCUSDT"]) { bid } }': (
                "OPERATION_RESOLUTION_FAILURE"
            ),
            BOMBS["objects"]: "QUERY_TOO_COMPLEX",  # a query: both protocols run them
        }
        for query, code in cases.items():
            with call_budget(REFUSAL_CALLS):
                await client.subscribe(query)
                message = await client.receive()
            payload = message["payload"]
            errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
            assert message["type"] in {"error", "data", "next"}, message
            assert errors[0]["extensions"]["code"] == code, message
    finally:
        await client.close()
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_websocket_message_over_the_body_limit_closes_1009(
    ws_server: tuple[str, Starlette],
) -> None:
    address, _app = ws_server
    client = await WsClient.open(f"ws://{address}/graphql")
    query = "{ exchanges }" + " " * 5000  # over MAX_BODY_BYTES=4096
    await client.subscribe(query)
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert "message too big" in closed.value.rcvd.reason
    # a message under the limit still works on a new socket
    connection = await connect(
        f"ws://{address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    await connection.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"RATE_LIMIT": False}
