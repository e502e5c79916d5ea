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
from uvicorn.supervisors import multiprocess

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


class GracefulWorker(multiprocess.Process):
    """A worker of ``--workers N`` that runs :class:`GracefulServer`, as a single
    process does: operations completed and sockets closed 1001 on shutdown, the
    garbage collector tuned after start-up. uvicorn's supervisor builds a stock
    ``Server`` in each worker and offers no hook for another, so :func:`run`
    points its ``Process`` at this class. The worker is a spawned process: it
    reads ``GC_GEN0_THRESHOLD`` from its own settings (the same environment)."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            from graphql_api.platform.settings import Settings

            threshold = Settings().gc_gen0_threshold
            self._server = GracefulServer(self.config, gc_gen0_threshold=threshold)
        return self._server


def run(config: uvicorn.Config, *, gc_gen0_threshold: int = 0) -> None:
    """What ``uvicorn.run`` does, with :class:`GracefulServer` in every worker."""
    if config.workers > 1:
        multiprocess.Process = GracefulWorker  # type: ignore[misc]
        multiprocess.Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = GracefulServer(config, gc_gen0_threshold=gc_gen0_threshold)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE
