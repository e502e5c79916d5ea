"""The strategy engine at the service level: real ingestor, hub, store and database.

The engine runs in the test (as the runtime runs it under leadership); the
runtime's own engine is switched off so only this one evaluates bars.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from graphql_api.server.runtime import open_services, strategy_engine
from graphql_api.services import Services
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.engine import StrategyEngine
from graphql_api.strategies.lifecycle import start_strategy, stop_strategy
from storage import models
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import make_settings

CLOSES = [10, 9, 8, 7, 6, 9, 10, 8, 7]  # SMA(2)/SMA(3): BUY on bar 5, SELL on bar 8


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, STRATEGY_ENGINE_ENABLED="false")
    async with open_services(settings) as running:
        yield running


@contextlib.asynccontextmanager
async def run_engine(engine: StrategyEngine) -> AsyncIterator[StrategyEngine]:
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def engine(services: Services) -> AsyncIterator[StrategyEngine]:
    async with run_engine(
        strategy_engine(
            services, poll_interval=0.1, timer_interval=0.05, grace=timedelta(seconds=0.5)
        )
    ) as running:
        yield running


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def crossing_ticks(symbol: str) -> list[list[Tick]]:
    """One batch per bar, 1m bars ending a few minutes ago, plus a closing tick."""
    base = floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1) - timedelta(minutes=12)
    batches = []
    for index, close in enumerate([*CLOSES, 8]):
        start = base + timedelta(minutes=index)
        batch = []
        for second, level in ((5, close + 1), (50, close)):
            value = Decimal(95_000 + 10 * level).quantize(Decimal("0.01"))
            batch.append(
                Tick(symbol, start + timedelta(seconds=second), value, value, value, Decimal(1))
            )
        batches.append(batch)
    return batches


async def running_strategy(services: Services, engine: StrategyEngine, symbol: str) -> int:
    created = await services.strategies.create(
        services.demo_user_id,
        StrategyDraft(
            name="cross",
            kind=StrategyKind.SMA_CROSS,
            symbol=symbol,
            interval=KlineInterval.MINUTE_1,
            parameters={"fast": 2, "slow": 3},
        ),
    )
    assert created.strategy is not None
    strategy_id = created.strategy.id
    await start_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)

    async def started() -> bool:
        return strategy_id in engine.running()

    await eventually(started)
    return strategy_id


async def signal_rows(services: Services, strategy_id: int) -> list[models.Signal]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(models.Signal)
                .where(models.Signal.strategy_id == strategy_id)
                .order_by(models.Signal.bar_time)
            )
        )


async def test_engine_runs_started_strategies_on_live_ticks(
    services: Services, engine: StrategyEngine
) -> None:
    # given a started strategy the engine picked up
    strategy_id = await running_strategy(services, engine, "BTCUSDT")
    # when a crossing sequence is ingested
    for batch in crossing_ticks("BTCUSDT"):
        await services.ingestor.ingest(batch)

    async def both_signals() -> bool:
        return len(await signal_rows(services, strategy_id)) >= 2

    await eventually(both_signals)
    # then exactly the BUY and the SELL are stored, with their reasons
    rows = await signal_rows(services, strategy_id)
    assert [(r.side, r.reason) for r in rows] == [
        ("BUY", "SMA(2) crossed above SMA(3)"),
        ("SELL", "SMA(2) crossed below SMA(3)"),
    ]
    # and stopping it removes its runner
    await stop_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)

    async def dropped() -> bool:
        return strategy_id not in engine.running()

    await eventually(dropped)


async def test_a_worker_that_falls_behind_resyncs_without_duplicates(
    services: Services,
) -> None:
    # given an engine whose tick mailbox holds a single tick
    async with run_engine(
        strategy_engine(
            services,
            poll_interval=0.1,
            timer_interval=0.05,
            grace=timedelta(seconds=0.5),
            mailbox_capacity=1,
        )
    ) as engine:
        strategy_id = await running_strategy(services, engine, "ETHUSDT")
        # when all the ticks arrive in one burst (it overflows and resyncs from the store)
        await services.ingestor.ingest([t for batch in crossing_ticks("ETHUSDT") for t in batch])

        async def both_signals() -> bool:
            return len(await signal_rows(services, strategy_id)) >= 2

        await eventually(both_signals)
        await asyncio.sleep(0.5)
        # then each signal is stored exactly once
        rows = await signal_rows(services, strategy_id)
        assert [r.side for r in rows] == ["BUY", "SELL"]


async def test_a_strategy_that_cannot_run_is_marked_error(
    services: Services, engine: StrategyEngine
) -> None:
    now = datetime.now(UTC)
    async with services.sessions() as session:
        row = models.Strategy(
            user_id=services.demo_user_id,
            name="broken",
            kind="SMA_CROSS",
            symbol_code="BTCUSDT",
            interval="1m",
            parameters={"fast": 30, "slow": 5},  # fast must be below slow
            status="RUNNING",
            auto_trade=False,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.commit()

    async def errored() -> bool:
        async with services.sessions() as session:
            current = await session.get(models.Strategy, row.id, populate_existing=True)
        return current is not None and current.status == "ERROR"

    await eventually(errored)
    async with services.sessions() as session:
        current = await session.get(models.Strategy, row.id)
    assert current is not None and "must be less than" in (current.status_reason or "")
