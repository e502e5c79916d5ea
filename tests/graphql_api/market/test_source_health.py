"""Market-data health as the tick ingestor counts it: ticks stored and lost per
source, each expected source's last tick age, and batch write times.

The store is the real embedded one; a write failure is a real one too (a trigger
that refuses a symbol's rows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import MarketDataHealth, SourceHealth, TickSource
from storage.timeseries import Tick
from tests.graphql_api.conftest import Embedded

D = Decimal


def tick(symbol: str = "600519.SH", last: str = "1500.00") -> Tick:
    price = D(last)
    return Tick(symbol, datetime.now(UTC), price, price, price, D(100))


@pytest.fixture
async def ingestor(embedded: Embedded) -> AsyncIterator[TickIngestor]:
    running = TickIngestor(embedded.store, embedded.hub, embedded.catalog, flush_interval=0.01)
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 5)


async def test_stored_ticks_are_counted_per_source(ingestor: TickIngestor) -> None:
    # when the simulated feed and an ingestTicks caller each store ticks
    await ingestor.ingest([tick(), tick(last="1500.01")], source=TickSource.SIMULATED)
    await ingestor.ingest([tick(last="1500.02")])  # ingestTicks' default source
    # then each is counted for its source, and every write was timed
    health = ingestor.health
    assert health.sources[TickSource.SIMULATED].stored == 2
    assert health.sources[TickSource.API].stored == 1
    assert health.failed_batches == 0
    assert health.batch_seconds.count == 2
    assert health.batch_seconds.sum > 0


async def test_ticks_of_a_failed_write_are_counted_as_lost_for_their_source(
    embedded: Embedded, ingestor: TickIngestor
) -> None:
    # given a store that refuses one symbol's rows
    async with embedded.engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE TRIGGER refuse_tick BEFORE INSERT ON ticks "
                "WHEN NEW.symbol = 'BTCUSDT' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    # when a feed's batch with that symbol is written
    with pytest.raises(Exception, match="disk full"):
        await ingestor.ingest([tick("BTCUSDT", "95000.00"), tick()], source=TickSource.API)
    # then its ticks are lost for that source, not stored, and the failed write is counted
    health = ingestor.health
    assert health.sources[TickSource.API].failed == 2
    assert health.sources[TickSource.API].stored == 0
    assert health.sources[TickSource.SIMULATED].failed == 0
    assert health.failed_batches == 1
    assert health.batch_seconds.count == 1


def test_a_source_has_an_age_only_while_it_is_expected() -> None:
    health = MarketDataHealth()
    now = time.monotonic()
    # a one-off ingestTicks call does not make the api source "expected"
    health.stored(TickSource.API, 3, now - 100)
    assert health.sources[TickSource.API].age(now) is None
    # an expected source that has not delivered yet ages from when it was expected
    health.expect(TickSource.SIMULATED)
    started = health.sources[TickSource.SIMULATED].expected_since
    assert started is not None
    assert health.sources[TickSource.SIMULATED].age(started + 7) == pytest.approx(7)
    # and from its last stored tick once it delivers
    health.stored(TickSource.SIMULATED, 5, started + 10)
    assert health.sources[TickSource.SIMULATED].age(started + 12) == pytest.approx(2)
    # storing nothing (a replayed batch) is not a sign of life
    health.stored(TickSource.SIMULATED, 0, started + 20)
    assert health.sources[TickSource.SIMULATED].age(started + 22) == pytest.approx(12)


def test_ticks_stored_before_a_source_was_expected_do_not_make_it_younger() -> None:
    source = SourceHealth(last_stored=50.0, expected_since=100.0)
    assert source.age(130.0) == pytest.approx(30)
