"""A uvicorn server in the test's own event loop, for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn


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
