"""A uvicorn server in the test's own event loop, for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn

from graphql_api.server.http_protocol import CoalescingHttpToolsProtocol
from graphql_api.server.websocket.direct import DirectWebSocketProtocol


def serve_config(
    app: Any,
    port: int,
    *,
    lifespan: Literal["on", "off"] = "on",
    http: type[asyncio.Protocol] = CoalescingHttpToolsProtocol,
    ws: str | type[asyncio.Protocol] = DirectWebSocketProtocol,
) -> uvicorn.Config:
    """uvicorn configured for ``app`` on loopback with the protocols ``quantgraph serve``
    runs (unless a test names others)."""
    return uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, http=http, ws=ws, log_level="warning"
    )


@contextlib.asynccontextmanager
async def serving(
    server: uvicorn.Server,
    *,
    sockets: list[socket.socket] | None = None,
    stop_timeout: float = 15,
) -> AsyncIterator[uvicorn.Server]:
    """Start ``server``, wait until it accepts connections, and stop it on the way out
    (its start-up failure, if any, is raised)."""
    task = asyncio.create_task(server.serve(sockets=sockets))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before starting")
            await asyncio.sleep(0.02)
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, stop_timeout)
