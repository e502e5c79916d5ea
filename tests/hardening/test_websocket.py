"""WebSocket handshakes: cross-site origins refused before the upgrade; live gauges;
connection_init refused as retryable while the database is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import live_server, login_token
from tests.hardening.conftest import hardened_settings, hardening_of
from tests.hardening.test_observability import value
from tests.support.graphql import Json, WsClient
from tests.support.restartable import RestartablePostgres

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


async def init_while_database_is_down(
    address: str, protocol: str, token: str
) -> tuple[Json, Any, Any]:
    """What a client that signs in over a socket hears: its last message and the close."""
    connection = await connect(f"ws://{address}/graphql", subprotocols=[protocol])  # type: ignore[list-item]
    messages: list[Json] = []
    try:
        await connection.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = json.loads(await asyncio.wait_for(connection.recv(), 15))
                if message["type"] != "ka":
                    messages.append(message)
    finally:
        await connection.close()
    return (messages[-1] if messages else {}), connection.close_code, connection.close_reason


@pytest.mark.postgres
async def test_connection_init_while_the_database_is_down_is_refused_as_retryable() -> None:
    with RestartablePostgres() as postgres:
        settings = hardened_settings(
            postgres.url,
            ROLE_CACHE_SECONDS=0,  # every connection_init reads the user's role
            BREAKER_FAILURE_THRESHOLD=2,
            BREAKER_RESET_SECONDS=5,
            DB_CONNECT_TIMEOUT_SECONDS=2,
        )
        async with live_server(settings) as (address, app):
            token = await login_token(app)
            # given: the database goes away after the client signed in
            postgres.stop()
            # when: sockets of either protocol send connection_init, before and
            # after the circuit opens
            outcomes = [
                await init_while_database_is_down(address, protocol, token)
                for protocol in ("graphql-transport-ws", "graphql-ws") * 2
            ]
            # then: each is closed "try again later", saying which service is down
            for protocol, (last, code, reason) in zip(
                ("graphql-transport-ws", "graphql-ws") * 2, outcomes, strict=True
            ):
                assert code == 1013, (protocol, last, code, reason)
                assert reason == "database unavailable; retry later", reason
                if protocol == "graphql-ws":
                    assert last["type"] == "connection_error", last
                    assert last["payload"]["code"] == "SERVICE_UNAVAILABLE", last
                else:
                    assert last == {}, last  # no ack, nothing else
            breaker = hardening_of(app).database_breaker
            assert breaker.opened >= 1 and breaker.refused >= 1  # refused fast once open
            # when: it comes back, the same token connects again
            postgres.start()
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                try:
                    client = await WsClient.open(
                        f"ws://{address}/graphql", payload={"authorization": f"Bearer {token}"}
                    )
                    break
                except (AssertionError, ConnectionClosed):
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.5)
            await client.close()
