"""Live servers whose GraphQL view uses the multiplexing WebSocket handlers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect

from graphql_api.platform.settings import Settings
from graphql_api.server.app import QuantgraphGraphQL, create_app
from graphql_api.server.serving import GracefulServer
from graphql_api.server.websocket import RealtimeOptions, RealtimeState, install, realtime_state
from graphql_api.server.websocket.direct import DirectWebSocketProtocol
from graphql_api.services import Services
from tests.conftest import make_settings, sql_database
from tests.support.uvicorn_server import serve_config, serving


def graphql_view(app: Starlette) -> QuantgraphGraphQL:
    for route in app.routes:
        if isinstance(route, WebSocketRoute) and isinstance(route.endpoint, QuantgraphGraphQL):
            return route.endpoint
    raise LookupError("no GraphQL WebSocket route")


@dataclass
class RealtimeServer:
    address: str
    app: Starlette
    view: QuantgraphGraphQL
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"ws://{self.address}/graphql"

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def state(self) -> RealtimeState:
        return realtime_state(self.view)


@contextlib.asynccontextmanager
async def realtime_server(
    settings: Settings,
    options: RealtimeOptions | None = None,
    *,
    multiplex: bool = True,
    send_buffer: int | None = None,
    ws: str | type[asyncio.Protocol] = DirectWebSocketProtocol,
) -> AsyncIterator[RealtimeServer]:
    """Like ``tests.conftest.live_server``, with :class:`GracefulServer` and our handlers.

    ``send_buffer`` fixes the kernel send buffer of accepted sockets (Linux copies it
    from the listening socket): without it loopback autotuning lets the kernel hold
    megabytes for a client that does not read, and a stall takes long to show.
    ``ws`` is uvicorn's WebSocket protocol: ours by default, as ``quantgraph serve``
    runs (``"websockets-sansio"`` is uvicorn's own, where messages go through ASGI).
    """
    app = create_app(settings)
    view = graphql_view(app)
    if multiplex:
        install(view, options or RealtimeOptions())
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = serve_config(app, port, ws=ws)
    server = GracefulServer(config)
    try:
        async with serving(server, sockets=[listener]):
            yield RealtimeServer(f"127.0.0.1:{port}", app, view, server)
    finally:
        listener.close()


@pytest.fixture
async def sqlite_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with sql_database(request, "sqlite") as url:
        yield url


@pytest.fixture
async def mx(sqlite_url: str) -> AsyncIterator[RealtimeServer]:
    async with realtime_server(make_settings(sqlite_url)) as running:
        yield running


async def open_raw(
    url: str,
    *,
    protocol: str = "graphql-transport-ws",
    payload: dict[str, Any] | None = None,
    receive_buffer: int | None = None,
    init: bool = True,
) -> ClientConnection:
    """A bare connection; with ``receive_buffer`` a tiny TCP window and client queue,
    so that a client that stops reading stalls the server's writes quickly."""
    kwargs: dict[str, Any] = {}
    if receive_buffer is not None:
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        # no compression: frames keep their full size, so the buffers fill
        kwargs = {"sock": sock, "max_queue": 1, "compression": None}
    connection = await connect(url, subprotocols=[protocol], **kwargs)  # type: ignore[list-item]
    if init:
        await connection.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        ack = json.loads(await asyncio.wait_for(connection.recv(), 10))
        assert ack["type"] == "connection_ack", ack
    return connection


async def closed_with(connection: ClientConnection, timeout: float = 10) -> tuple[int, str]:
    """Read (and discard) until the server closes; its close code and reason."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            while True:
                await connection.recv()
    assert connection.close_code is not None, "the server did not close the socket"
    return connection.close_code, connection.close_reason or ""


async def until(predicate: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting: {what}")
        await asyncio.sleep(0.01)
