"""``ingestTicks`` under faults: what each caller is told is what was stored.

A call's ticks are stored all or nothing, whatever else was flushed with them,
and a retry with the same ``batchId`` never stores them twice. The faults are
real: a PostgreSQL that stops in the middle of a flush, and a database that
refuses one caller's rows (a trigger) while other callers' rows go through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.services import Services
from storage import models
from tests.conftest import http_client, make_settings, running_app, user_token
from tests.support.graphql import Json, error_codes, execute, post
from tests.support.restartable import RestartablePostgres

MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!, $batchId: String) {
  ingestTicks(ticks: $ticks, batchId: $batchId) { accepted userErrors { field code message } }
}
"""


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


def call_ticks(call: int, count: int, symbol: str = "BTCUSDT") -> list[Json]:
    """``count`` ticks whose price tells which call they belong to."""
    start = datetime.now(UTC) - timedelta(seconds=30)
    price = f"{95_000 + call}.00"
    return [
        {
            "symbol": symbol,
            "time": (start + timedelta(microseconds=index)).isoformat(),
            "last": price,
            "volume": "0.5",
        }
        for index in range(count)
    ]


async def stored_per_call(engine: AsyncEngine, calls: int) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(models.TickRow.last, func.count()).group_by(models.TickRow.last)
        )
        by_price = {int(price): count for price, count in rows}
    return [by_price.get(95_000 + call, 0) for call in range(calls)]


async def ingest(http: httpx.AsyncClient, ticks: list[Json], batch_id: str | None = None) -> Json:
    return await post(http, MUTATION_INGEST, {"ticks": ticks, "batchId": batch_id})


def told_stored(body: Json, size: int) -> int:
    """What the answer says was stored: all the ticks, or none (a user or service error)."""
    if "errors" in body:
        assert error_codes(body) == ["SERVICE_UNAVAILABLE"], body
        return 0
    payload = body["data"]["ingestTicks"]
    assert payload["accepted"] in (0, size), payload
    return int(payload["accepted"])


def stop_after_first_tick_commit(engine: AsyncEngine, stop: Callable[[], None]) -> None:
    """Stop the server the moment the first transaction that stored ticks is back in the pool.

    That is between two transactions of one flush: where a flush used to be cut
    in 1,000-row pieces, the first piece is committed and the rest is not.
    """
    fired = False

    def checkin(dbapi_connection: Any, _record: Any) -> None:
        nonlocal fired
        if fired or dbapi_connection is None:
            return
        try:
            stored = dbapi_connection.run_async(
                lambda raw: raw.fetchval("SELECT count(*) FROM ticks")
            )
        except Exception:
            return
        if stored:
            fired = True
            stop()  # blocks the loop while PostgreSQL shuts down: nothing else runs meanwhile

    event.listen(engine.sync_engine.pool, "checkin", checkin)


@pytest.mark.postgres
async def test_a_restart_mid_flush_tells_every_caller_the_truth_and_retries_store_once() -> None:
    calls, size = 4, 5_000
    with RestartablePostgres() as postgres:
        settings = make_settings(
            postgres.url,
            TICK_BATCH_SIZE=1_000,
            TICK_FLUSH_INTERVAL_MS=50,
            BREAKER_FAILURE_THRESHOLD=1,
            BREAKER_RESET_SECONDS=0.5,
            DB_CONNECT_TIMEOUT_SECONDS=2,
            # nothing else in the process touches the database (and the breaker)
            MATCHER_ENABLED=False,
            STRATEGY_ENGINE_ENABLED=False,
            ALERT_ENGINE_ENABLED=False,
            WEBHOOKS_ENABLED=False,
            EQUITY_SNAPSHOTS_ENABLED=False,
        )
        async with running_app(settings) as app:
            engine = services_of(app).engine
            token = await user_token(app, "feeder", Role.FEED)
            batches = [call_ticks(call, size) for call in range(calls)]
            async with http_client(app, token) as http:
                # given a flush of several large calls, and a server that stops after
                # the first transaction that stored ticks
                stop_after_first_tick_commit(engine, postgres.stop)
                # when four feeds send 5,000 ticks each at once
                answers = await asyncio.gather(
                    *(ingest(http, batch, f"batch-{n}") for n, batch in enumerate(batches))
                )
                told = [told_stored(body, size) for body in answers]
                assert 0 in told, "the outage came too late to fail any call"

                # then, once the server is back, each call's ticks are stored as it was told
                postgres.start()
                stored = await until_readable(engine, calls)
                assert stored == told, f"told {told}, stored {stored}"

                # and retrying every call with its batchId (again after retryAfter, as
                # a client does, while the just-restarted server still answers
                # SERVICE_UNAVAILABLE) completes the failed ones and stores the
                # successful ones no second time
                retried = await asyncio.gather(
                    *(
                        ingest_until_answered(http, batch, f"batch-{n}")
                        for n, batch in enumerate(batches)
                    )
                )
                for body in retried:
                    assert (body.get("data") or {}).get("ingestTicks") == {
                        "accepted": size,
                        "userErrors": [],
                    }, body
                assert await stored_per_call(engine, calls) == [size] * calls


async def ingest_until_answered(
    http: httpx.AsyncClient, ticks: list[Json], batch_id: str, attempts: int = 10
) -> Json:
    """``ingest``, sent again after ``retryAfter`` while the answer is SERVICE_UNAVAILABLE."""
    for _ in range(attempts - 1):
        body = await ingest(http, ticks, batch_id)
        if "errors" not in body or error_codes(body) != ["SERVICE_UNAVAILABLE"]:
            return body
        await asyncio.sleep(float(body["errors"][0]["extensions"].get("retryAfter", 0.5)))
    return await ingest(http, ticks, batch_id)


async def until_readable(engine: AsyncEngine, calls: int, timeout: float = 30) -> list[int]:
    """Per-call counts, once the restarted server answers (the breaker lets a trial through)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await stored_per_call(engine, calls)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_a_refused_group_stores_nothing_and_spares_the_other_groups(
    database_url: str,
) -> None:
    # given a database that refuses one symbol's rows (a trigger)
    # (500: no two of these calls fit in one group; several fit in one flush)
    settings = make_settings(database_url, TICK_BATCH_SIZE=500, TICK_FLUSH_INTERVAL_MS=50)
    async with running_app(settings) as app:
        engine = services_of(app).engine
        await refuse_symbol(engine, "ETHUSDT")
        token = await user_token(app, "feeder", Role.FEED)
        async with http_client(app, token) as http:
            # when three calls of 300 ticks are flushed together, the middle one refused
            symbols = ["BTCUSDT", "ETHUSDT", "BTCUSDT"]
            answers = await asyncio.gather(
                *(ingest(http, call_ticks(n, 300, symbol)) for n, symbol in enumerate(symbols))
            )
        told = [told_stored(body, 300) for body in answers]
        # then the refused call is told so and stored nothing; the others are whole
        assert told == [300, 0, 300]
        assert await stored_per_call(engine, 3) == told


async def refuse_symbol(engine: AsyncEngine, symbol: str) -> None:
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "CREATE FUNCTION refuse_tick() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'tablespace full'; END $$ LANGUAGE plpgsql"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_tick BEFORE INSERT ON ticks FOR EACH ROW "
                    f"WHEN (NEW.symbol = '{symbol}') EXECUTE FUNCTION refuse_tick()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_tick BEFORE INSERT ON ticks "
                    f"WHEN NEW.symbol = '{symbol}' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )


async def test_a_batch_id_stores_a_batch_once_and_refuses_other_ticks(
    database_url: str,
) -> None:
    settings = make_settings(database_url)
    async with running_app(settings) as app:
        engine = services_of(app).engine
        token = await user_token(app, "feeder", Role.FEED)
        other = await user_token(app, "other-feed", Role.FEED)
        batch = call_ticks(0, 3)
        async with http_client(app, token) as http, http_client(app, other) as other_http:
            # given a batch sent twice at once under one key
            first = await asyncio.gather(
                *(
                    execute(http, MUTATION_INGEST, {"ticks": batch, "batchId": "b-1"})
                    for _ in range(2)
                )
            )
            # then both are answered as stored, and it is stored once
            assert [data["ingestTicks"] for data in first] == [
                {"accepted": 3, "userErrors": []}
            ] * 2
            assert await stored_per_call(engine, 1) == [3]
            # and sent again later, it is answered the same and still stored once
            again = await execute(http, MUTATION_INGEST, {"ticks": batch, "batchId": "b-1"})
            assert again["ingestTicks"] == {"accepted": 3, "userErrors": []}
            assert await stored_per_call(engine, 1) == [3]
            # a key reused for other ticks is a conflict, and stores nothing
            reused = await execute(
                http, MUTATION_INGEST, {"ticks": call_ticks(1, 2), "batchId": "b-1"}
            )
            assert reused["ingestTicks"]["accepted"] == 0
            assert [e["code"] for e in reused["ingestTicks"]["userErrors"]] == ["CONFLICT"]
            # another feed's keys are its own
            theirs = await execute(
                other_http, MUTATION_INGEST, {"ticks": call_ticks(2, 2), "batchId": "b-1"}
            )
            assert theirs["ingestTicks"] == {"accepted": 2, "userErrors": []}
            # a key of the wrong length is refused before anything is stored
            long_key = await execute(http, MUTATION_INGEST, {"ticks": batch, "batchId": "x" * 65})
            assert [e["field"] for e in long_key["ingestTicks"]["userErrors"]] == ["batchId"]
        assert await stored_per_call(engine, 3) == [3, 0, 2]
