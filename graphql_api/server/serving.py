"""Running the app under uvicorn with a graceful WebSocket shutdown.

On shutdown uvicorn closes every open WebSocket with 1012 *before* it runs the
app's lifespan shutdown, so the app never gets a chance to tell subscribers that
their operations are over. :class:`GracefulServer` first completes every active
GraphQL operation and closes each socket with ``1001 server shutting down``
(:func:`graphql_api.server.websocket.shutdown_all`), then shuts down as uvicorn does.
"""

from __future__ import annotations

import contextlib
import gc
import socket

import structlog
import uvicorn

from graphql_api.server.websocket import shutdown_all

log = structlog.get_logger(__name__)


class GracefulServer(uvicorn.Server):
    """Parameters:
    gc_gen0_threshold: see :func:`tune_gc` (0 keeps the interpreter's defaults).
    """

    def __init__(self, config: uvicorn.Config, *, gc_gen0_threshold: int = 0) -> None:
        super().__init__(config)
        self._gc_gen0_threshold = gc_gen0_threshold

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # runs the app's lifespan startup first
        if self.started and self._gc_gen0_threshold:
            tune_gc(self._gc_gen0_threshold)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(Exception):
            closed = await shutdown_all()
            if closed:
                log.info("websockets closed for shutdown", sockets=closed)
        await super().shutdown(sockets)


def tune_gc(gen0_threshold: int) -> None:
    """Freeze what start-up built and collect the young generation less often.

    A GraphQL response allocates tens of thousands of short-lived objects (one
    per field and result), so the default threshold of 700 runs the cyclic
    collector many times per request, each pass also walking the long-lived
    schema, ORM and module objects. Freezing those after start-up takes them
    out of every pass; a larger threshold makes passes rarer. Together they
    roughly halve CPU per nested-orders request (see docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    log.info("garbage collector tuned", gen0_threshold=gen0_threshold, frozen=gc.get_freeze_count())


def run(config: uvicorn.Config, *, gc_gen0_threshold: int = 0) -> None:
    """What ``uvicorn.run`` does, with :class:`GracefulServer` for a single worker.

    uvicorn's multi-worker supervisor builds a stock ``Server`` in each worker, so
    with ``workers`` > 1 sockets still close with 1012 on shutdown.
    """
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = GracefulServer(config, gc_gen0_threshold=gc_gen0_threshold)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE
