"""Breakers and timeouts, against a real PostgreSQL and a real Redis that stop and come back."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette

from graphql_api.platform.resilience import (
    BreakerState,
    CircuitBreaker,
    ServiceUnavailableError,
    with_timeout,
)
from tests.conftest import http_client, login_token, running_app, sql_database
from tests.hardening.conftest import hardened_settings, hardening_of
from tests.support.graphql import Json, error_codes
from tests.support.restartable import RestartablePostgres
from tests.support.servers import RedisProcess

QUERY_ORDERS = "{ orders(first: 5) { edges { node { id } } } }"


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # (a call, so mypy does not narrow the property between reads)


def test_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("db", failure_threshold=2, reset_timeout=10, clock=lambda: now[0])
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(ServiceUnavailableError) as raised:
        breaker.check()
    assert raised.value.retry_after == pytest.approx(10)
    now[0] = 10
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()  # one trial…
    assert not breaker.allow()  # …at a time
    breaker.record_failure()  # the trial failed: open for another period
    assert state_of(breaker) is BreakerState.OPEN
    now[0] = 20
    assert breaker.allow()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.opened == 1


async def test_breaker_call_and_timeout() -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=60)

    async def slow() -> None:
        await asyncio.sleep(10)

    with pytest.raises(ServiceUnavailableError, match=r"no answer within 0\.05s"):
        await breaker.call(lambda: with_timeout(slow(), 0.05, service="svc"))
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(ServiceUnavailableError, match="circuit open"):
        await breaker.call(lambda: with_timeout(slow(), 0.05, service="svc"))


async def query(client: httpx.AsyncClient, text: str = QUERY_ORDERS) -> Json:
    response = await client.post("/graphql", json={"query": text})
    body: Json = response.json()
    return body


async def until(client: httpx.AsyncClient, ok: bool, timeout: float = 30) -> Json:
    """Poll until the query succeeds (ok) or fails; the last body."""
    deadline = time.monotonic() + timeout
    while True:
        body = await query(client)
        if ("errors" not in body) == ok or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)


async def readiness(app: Starlette) -> tuple[int, Json]:
    async with http_client(app, None) as http:
        response = await http.get("/readyz")
        body: Json = response.json()
        return response.status_code, body


async def ready_within(app: Starlette, timeout: float) -> tuple[int, Json]:
    deadline = time.monotonic() + timeout
    status, detail = await readiness(app)
    while status != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status, detail = await readiness(app)
    return status, detail


@pytest.mark.postgres
async def test_database_outage_fails_fast_and_recovers() -> None:
    with RestartablePostgres() as postgres:
        settings = hardened_settings(
            postgres.url,
            BREAKER_FAILURE_THRESHOLD=2,
            BREAKER_RESET_SECONDS=1,
            DB_CONNECT_TIMEOUT_SECONDS=2,
        )
        async with running_app(settings) as app:
            breaker = hardening_of(app).database_breaker
            async with http_client(app, await login_token(app)) as http:
                assert "errors" not in await query(http)
                assert (await readiness(app))[0] == 200

                # when: the database goes away
                postgres.stop()

                # then: errors say so (never a masked internal error)…
                failures = [await query(http) for _ in range(3)]
                for body in failures:
                    assert error_codes(body) == ["SERVICE_UNAVAILABLE"], body
                    assert body["errors"][0]["extensions"]["service"] == "database"
                # …and once the circuit is open, requests are refused without trying
                assert state_of(breaker) is BreakerState.OPEN
                refused_before = breaker.refused
                started = time.perf_counter()
                body = await query(http)
                elapsed = time.perf_counter() - started
                assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
                assert body["errors"][0]["extensions"]["retryAfter"] > 0
                assert breaker.refused > refused_before
                print(f"refused in {elapsed * 1000:.1f} ms while the database is down")
                status, detail = await readiness(app)
                assert status == 503
                assert detail["checks"]["database"].startswith("failed")

                # when: it comes back
                postgres.start()

                # then: the half-open trial succeeds and traffic flows again
                body = await until(http, ok=True)
                assert "errors" not in body, body
                assert state_of(breaker) is BreakerState.CLOSED
                status, detail = await ready_within(app, 10)
                assert status == 200, detail


@pytest.mark.redis
async def test_redis_outage_degrades_and_recovers(sqlite_url: str) -> None:
    redis = RedisProcess()
    redis.start()
    try:
        settings = hardened_settings(
            sqlite_url,
            BROADCAST_URL=redis.url,
            REDIS_KEY_PREFIX=f"test-{uuid.uuid4().hex}:",
            BREAKER_FAILURE_THRESHOLD=2,
            BREAKER_RESET_SECONDS=1,
        )
        async with running_app(settings) as app:
            hardening = hardening_of(app)
            assert hardening.limiter.shared  # REDIS_URL defaults to the broadcaster's
            async with http_client(app, await login_token(app)) as http:
                assert "errors" not in await query(http)
                assert (await readiness(app))[0] == 200

                # when: Redis goes away
                redis.stop()

                # then: requests still work (rate limits fall back to this process)…
                for _ in range(4):
                    assert "errors" not in await query(http)
                assert state_of(hardening.redis_breaker) is BreakerState.OPEN
                # …but the process is not ready: realtime fan-out is down
                status, detail = await readiness(app)
                assert status == 503
                assert detail["checks"]["broadcast"].startswith("failed")
                assert detail["checks"]["database"] == "ok"

                # when: Redis comes back (same port)
                redis.start()

                # then: ready again, and the shared buckets are used again
                assert (await ready_within(app, 30))[0] == 200
                await asyncio.sleep(settings.breaker_reset_seconds)
                assert "errors" not in await query(http)
                assert state_of(hardening.redis_breaker) is BreakerState.CLOSED
    finally:
        redis.stop()


@pytest.mark.postgres
async def test_statement_timeout_applies_to_every_pooled_connection(
    request: pytest.FixtureRequest,
) -> None:
    async with sql_database(request, "postgresql") as url:
        settings = hardened_settings(url, DB_STATEMENT_TIMEOUT_MS=250)
        async with running_app(settings) as app:
            engine = app.state.services.engine
            # connections opened during start-up, and new ones, alike
            async with engine.connect() as first, engine.connect() as second:
                for connection in (first, second):
                    shown = await connection.scalar(text("SHOW statement_timeout"))
                    assert shown == "250ms"
            async with engine.connect() as connection:
                with pytest.raises(DBAPIError, match="statement timeout"):
                    await connection.execute(text("SELECT pg_sleep(2)"))
