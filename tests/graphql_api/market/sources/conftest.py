"""The parts a source feeds, on SQLite and on PostgreSQL, and a clock tests drive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.sources.replay import ReplayClock
from tests.conftest import sql_database
from tests.graphql_api.conftest import Embedded, open_embedded


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def parts(request: pytest.FixtureRequest) -> AsyncIterator[Embedded]:
    async with sql_database(request, request.param) as url, open_embedded(url) as embedded:
        yield embedded


@pytest.fixture
async def ingestor(parts: Embedded) -> AsyncIterator[TickIngestor]:
    running = TickIngestor(parts.store, parts.hub, parts.catalog)
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 5)


class FakeClock:
    """Monotonic and wall time that move only when the code under test sleeps."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.seconds += seconds
        await asyncio.sleep(0)

    def replay_clock(self) -> ReplayClock:
        return ReplayClock(monotonic=self.monotonic, now=self.now, sleep=self.sleep)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
