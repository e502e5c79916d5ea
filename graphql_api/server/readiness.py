"""``/readyz``: is this process ready for traffic? The database, the tick store, the bus
and the background loops, each checked within a deadline.

A load balancer takes a process out of rotation on 503; ``/metrics`` says why in detail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from graphql_api.hardening.guarded_timeseries import GuardedTimeSeriesStore
from graphql_api.platform.resilience import with_timeout
from graphql_api.realtime.redis_backend import RedisBroadcastBackend

log = structlog.get_logger(__name__)


Check = Callable[[Any], Any]


async def check_database(services: Any) -> None:
    engine: AsyncEngine = services.engine
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_broadcast(services: Any) -> None:
    backend = services.hub.backend
    if isinstance(backend, RedisBroadcastBackend) and not backend.healthy.is_set():
        raise RuntimeError("redis pub/sub connection is down (reconnecting)")


async def check_background(services: Any) -> None:
    """The tick ingestor, matcher and strategy engine loops are alive in this process.

    (A follower's matcher loop is alive too: it waits for leadership.)
    """
    stopped = services.activity.stopped_tasks()
    if stopped:
        raise RuntimeError(f"stopped: {', '.join(stopped)}")


async def check_timeseries(services: Any) -> None:
    """The tick store, when it is not the database itself (TDengine): refused while it is
    known to be down (writes buffered, circuit open), else one round trip."""
    store = services.timeseries
    if isinstance(store, GuardedTimeSeriesStore):
        await store.probe()


def source_states(services: Any) -> dict[str, str]:
    """The state of each market-data source this process runs (``running``,
    ``reconnecting``, ``circuit_open``, ``ended``, ``failed: <why>``).

    Reported, but not a readiness check: a process serves orders, queries and other
    symbols' data while one upstream is down, and taking it out of rotation for that
    would turn a data outage into a full one. Alerts read the metric
    ``quantgraph_market_data_source_up`` instead.
    """
    ingestor = getattr(services, "ingestor", None)
    if ingestor is None:
        return {}
    states: dict[str, str] = {}
    for source, health in ingestor.health.sources.items():
        if health.state is None:
            continue
        state = str(health.state)
        if health.state == "failed" and health.last_error:
            state = f"failed: {health.last_error}"
        states[str(source)] = state
    return states


DEFAULT_CHECKS: dict[str, Check] = {
    "database": check_database,
    "timeseries": check_timeseries,
    "broadcast": check_broadcast,
    "engines": check_background,
}


def readiness_endpoint(
    *, timeout: float = 2.0, checks: dict[str, Check] | None = None
) -> Callable[[Request], Any]:
    """``/readyz``: 200 when every check passes within ``timeout``, else 503; JSON detail.

    The services come from ``request.app.state.services`` (set by the lifespan).
    """
    selected = checks or DEFAULT_CHECKS

    async def run(name: str, check: Check, services: Any) -> tuple[str, str]:
        try:
            await with_timeout(check(services), timeout, service=name)
        except Exception as error:
            return name, f"failed: {error}"
        return name, "ok"

    async def endpoint(request: Request) -> Response:
        services = getattr(request.app.state, "services", None)
        if services is None:
            return JSONResponse({"status": "starting", "checks": {}}, status_code=503)
        results = dict(
            await asyncio.gather(*(run(name, c, services) for name, c in selected.items()))
        )
        ready = all(result == "ok" for result in results.values())
        if not ready:
            log.warning("not ready", checks=results)
        body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": results}
        sources = source_states(services)
        if sources:  # only on the process that runs a source
            body["sources"] = sources
        return JSONResponse(body, status_code=200 if ready else 503)

    return endpoint
