"""Heartbeats and limits: pings, subscriptions per socket, sockets per user,
connection-init timeout, and a clean ``complete`` + 1001 on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from graphql_api.server.websocket import (
    GOING_AWAY,
    GOING_AWAY_REASON,
    INIT_TIMEOUT,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_CONNECTIONS_REASON,
    RealtimeOptions,
    shutdown_all,
)
from tests.conftest import login_token, make_settings
from tests.realtime.conftest import RealtimeServer, closed_with, open_raw, realtime_server, until
from tests.support.graphql import WsClient

TICKS = 'subscription { ticks(symbols: ["BTCUSDT"]) { symbol last } }'
ORDERS = "subscription { orderUpdates { id status } }"
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


async def auth_payload(server: RealtimeServer) -> dict[str, str]:
    return {"authorization": f"Bearer {await login_token(server.app)}"}


async def messages_until_closed(connection: ClientConnection) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                received.append(json.loads(await connection.recv()))
    return received


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_server_keep_alive_on_both_protocols(mx: RealtimeServer, protocol: str) -> None:
    mx.view.keep_alive_interval = 0.2
    connection = await open_raw(mx.url, protocol=protocol)
    try:
        expected = "ping" if protocol == "graphql-transport-ws" else "ka"
        kinds: list[str] = []
        async with asyncio.timeout(3):
            while kinds.count(expected) < 2:
                kinds.append(json.loads(await connection.recv())["type"])
        assert kinds.count(expected) == 2
    finally:
        await connection.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscriptions_per_connection_are_limited(mx: RealtimeServer, protocol: str) -> None:
    mx.view.max_subscriptions_per_connection = 2
    ws = await WsClient.open(mx.url, protocol=protocol)
    try:
        await ws.subscribe(TICKS)
        await ws.subscribe('subscription { ticks(symbols: ["ETHUSDT"]) { last } }')
        third = await ws.subscribe('subscription { ticks(symbols: ["SOLUSDT"]) { last } }')
        message = await ws.receive()
        while message.get("id") != third:
            message = await ws.receive()
        # refused with an `error` for that operation; the socket stays open
        assert message["type"] == "error"
        error = (
            message["payload"][0] if isinstance(message["payload"], list) else message["payload"]
        )
        assert error["message"] == "Subscription limit reached"
        await ws.send({"type": "complete" if protocol == PROTOCOLS[0] else "stop", "id": "1"})
        await until(lambda: mx.state.registry.stream_count == 1)
        fourth = await ws.subscribe('subscription { ticks(symbols: ["BNBUSDT"]) { last } }')
        await until(lambda: mx.state.registry.stream_count == 2, what=f"{fourth} accepted")
    finally:
        await ws.close()


async def test_connections_per_user_are_limited(sqlite_url: str) -> None:
    options = RealtimeOptions(max_connections_per_user=2)
    async with realtime_server(make_settings(sqlite_url), options) as server:
        auth = await auth_payload(server)
        first = await WsClient.open(server.url, payload=auth)
        second = await WsClient.open(server.url, protocol="graphql-ws", payload=auth)
        anonymous = [await WsClient.open(server.url) for _ in range(3)]  # not limited
        try:
            # a third socket for the same user is closed instead of acknowledged
            refused = await open_raw(server.url, payload=auth, init=False)
            await refused.send(json.dumps({"type": "connection_init", "payload": auth}))
            assert await closed_with(refused) == (TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON)
            legacy = await open_raw(server.url, protocol="graphql-ws", init=False)
            await legacy.send(json.dumps({"type": "connection_init", "payload": auth}))
            error = json.loads(await legacy.recv())
            assert error == {
                "type": "connection_error",
                "payload": {"message": TOO_MANY_CONNECTIONS_REASON},
            }
            assert await closed_with(legacy) == (TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON)
            # once one closes, the user may connect again
            await first.close()
            await until(lambda: sum(server.state.connections.values()) == 1)
            again = await WsClient.open(server.url, payload=auth)
            await again.close()
        finally:
            for client in (first, second, *anonymous):
                await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_connection_init_timeout(mx: RealtimeServer, protocol: str) -> None:
    mx.view.connection_init_wait_timeout = timedelta(seconds=0.3)
    silent = await open_raw(mx.url, protocol=protocol, init=False)
    code, reason = await closed_with(silent, timeout=5)
    assert (code, reason) == (INIT_TIMEOUT, "Connection initialisation timeout")


@pytest.mark.parametrize("multiplex", [True, False], ids=["shared", "unshared"])
async def test_shutdown_completes_every_operation_then_closes_1001(
    sqlite_url: str, multiplex: bool
) -> None:
    options = RealtimeOptions(multiplex=multiplex)
    async with realtime_server(make_settings(sqlite_url), options) as server:
        auth = await auth_payload(server)
        transport = await WsClient.open(server.url, payload=auth)
        legacy = await WsClient.open(server.url, protocol="graphql-ws", payload=auth)
        await transport.subscribe(TICKS)
        await transport.subscribe(ORDERS)
        await legacy.subscribe(ORDERS)
        await asyncio.sleep(0.5)  # all three running
        # when the server is asked to stop (SIGTERM does the same)
        server.server.should_exit = True
        got_transport = await messages_until_closed(transport.connection)
        got_legacy = await messages_until_closed(legacy.connection)
    # then each operation was completed, and only then was the socket closed
    completes = [m["id"] for m in got_transport if m["type"] == "complete"]
    assert sorted(completes) == ["1", "2"]
    assert got_transport[-1]["type"] == "complete"
    assert [m["id"] for m in got_legacy if m["type"] == "complete"] == ["1"]
    for client in (transport, legacy):
        assert client.connection.close_code == GOING_AWAY
        assert client.connection.close_reason == GOING_AWAY_REASON


async def test_shutdown_all_for_a_lifespan(mx: RealtimeServer) -> None:
    ws = await WsClient.open(mx.url)
    await ws.subscribe(TICKS)
    await until(lambda: mx.state.registry.stream_count == 1)
    assert await shutdown_all(mx.view) == 1
    got = await messages_until_closed(ws.connection)
    assert got[-1] == {"type": "complete", "id": "1"}
    assert ws.connection.close_code == GOING_AWAY
    await until(lambda: mx.state.registry.stream_count == 0 and not mx.state.handlers)
