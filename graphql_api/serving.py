"""Running the app under uvicorn with a graceful WebSocket shutdown.

On shutdown uvicorn closes every open WebSocket with 1012 *before* it runs the
app's lifespan shutdown, so the app never gets a chance to tell subscribers that
their operations are over. :class:`GracefulServer` first completes every active
GraphQL operation and closes each socket with ``1001 server shutting down``
(:func:`graphql_api.ws_protocol.shutdown_all`), then shuts down as uvicorn does.
"""

from __future__ import annotations

import contextlib
import socket

import structlog
import uvicorn

from graphql_api.ws_protocol import shutdown_all

log = structlog.get_logger(__name__)


class GracefulServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(Exception):
            closed = await shutdown_all()
            if closed:
                log.info("websockets closed for shutdown", sockets=closed)
        await super().shutdown(sockets)


def run(config: uvicorn.Config) -> None:
    """What ``uvicorn.run`` does, with :class:`GracefulServer` for a single worker.

    uvicorn's multi-worker supervisor builds a stock ``Server`` in each worker, so
    with ``workers`` > 1 sockets still close with 1012 on shutdown.
    """
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = GracefulServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE
