"""WebSocket handshakes: cross-site origins refused before the upgrade; live gauges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import live_server
from tests.hardening.conftest import hardened_settings
from tests.hardening.test_observability import value
from tests.support.graphql import WsClient

SUBSCRIPTION_TICKS = 'subscription { ticks(symbols: ["600519.SH"]) { last } }'


@pytest.fixture
async def server(sqlite_url: str) -> AsyncIterator[tuple[str, Starlette]]:
    settings = hardened_settings(sqlite_url, CORS_ORIGINS="https://app.example")
    async with live_server(settings) as running:
        yield running


async def test_cross_site_origin_is_refused_before_upgrade(
    server: tuple[str, Starlette],
) -> None:
    address, _app = server
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin="https://evil.example",  # type: ignore[arg-type]
        )
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin", [None, "https://app.example", "http://{address}"], ids=["none", "allowed", "same"]
)
async def test_allowed_origins_connect(server: tuple[str, Starlette], origin: str | None) -> None:
    address, _app = server
    given = origin.format(address=address) if origin else None
    connection = await connect(
        f"ws://{address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        origin=given,  # type: ignore[arg-type]
    )
    await connection.close()


async def test_connection_and_subscription_gauges(server: tuple[str, Starlette]) -> None:
    address, _app = server
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        client = await WsClient.open(f"ws://{address}/graphql")
        try:
            await client.subscribe(SUBSCRIPTION_TICKS)
            text = ""
            for _ in range(50):  # the subscription starts asynchronously
                text = (await http.get("/metrics")).text
                if value(text, "quantgraph_active_subscriptions") == 1:
                    break
                await asyncio.sleep(0.05)
            assert value(text, "quantgraph_websocket_connections") == 1
            assert value(text, "quantgraph_active_subscriptions") == 1
        finally:
            await client.close()
        for _ in range(200):
            text = (await http.get("/metrics")).text
            if (
                value(text, "quantgraph_websocket_connections") == 0
                and value(text, "quantgraph_active_subscriptions") == 0
            ):
                break
            await asyncio.sleep(0.05)
        assert value(text, "quantgraph_websocket_connections") == 0
        assert value(text, "quantgraph_active_subscriptions") == 0


async def test_subscriptions_are_rate_limited(sqlite_url: str) -> None:
    settings = hardened_settings(
        sqlite_url, RATE_LIMIT_ANONYMOUS_BURST=1, RATE_LIMIT_ANONYMOUS_PER_SECOND=0.001
    )
    async with live_server(settings) as (address, _app):
        client = await WsClient.open(f"ws://{address}/graphql")
        try:
            await client.subscribe(SUBSCRIPTION_TICKS)  # takes the only point
            # (an identical subscription would join the shared execution, free of charge)
            refused = await client.subscribe(SUBSCRIPTION_TICKS.replace("600519.SH", "000001.SZ"))
            message = await client.receive()
            # an execution result with the error, then the operation completes
            assert (message["id"], message["type"]) == (refused, "next")
            assert message["payload"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            assert (await client.receive())["type"] == "complete"
        finally:
            await client.close()


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_queries_over_either_protocol_answer_once_then_complete(
    server: tuple[str, Starlette], protocol: str
) -> None:
    # given a socket of either protocol (the legacy one carried queries too)
    address, _app = server
    client = await WsClient.open(f"ws://{address}/graphql", protocol=protocol)
    try:
        # when it sends a query, and a query with an error in a field
        for query in ("{ exchanges }", '{ symbol(code: "NO.SUCH") { code } }'):
            operation_id = await client.subscribe(query)
            answer = await client.receive()
            done = await client.receive()
            # then one result, then complete: never an internal error
            assert answer["type"] in {"data", "next"}, answer
            assert answer["id"] == operation_id
            assert "errors" not in answer["payload"], answer
            assert done == {"type": "complete", "id": operation_id}
        first = await client.subscribe("{ exchanges }")
        assert (await client.receive())["payload"]["data"]["exchanges"], first
    finally:
        await client.close()
