"""A source's reader queues ticks and goes on reading; writes batch up behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import TickSource
from graphql_api.market.sources.handover import TickHandover
from storage.timeseries import Tick
from tests.graphql_api.conftest import Embedded

SYMBOL = "BTCUSDT"


def ticks(count: int) -> list[Tick]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    return [
        Tick(
            SYMBOL,
            start + timedelta(milliseconds=n),
            Decimal("95000.00") + Decimal(n) / 100,
            Decimal("94999.99") + Decimal(n) / 100,
            Decimal("95000.01") + Decimal(n) / 100,
            Decimal("0.001"),
        )
        for n in range(count)
    ]


async def test_the_reader_never_waits_for_a_write_and_every_tick_is_stored_in_order(
    parts: Embedded, ingestor: TickIngestor
) -> None:
    # given 500 ticks queued one by one, as a stream reader would
    handover = TickHandover(ingestor, TickSource.BINANCE)
    sent = ticks(500)
    for tick in sent:
        await handover.put(tick)
    # then queueing them did not wait for the store: nothing is written yet
    health = ingestor.health.of(TickSource.BINANCE)
    assert health.stored == 0
    # and once flushed, every tick is stored, in order, exactly as sent
    await handover.flush()
    assert health.stored == 500
    stored = await parts.store.ticks(SYMBOL, sent[0].time, None, 1000)
    assert [(t.time, t.last, t.bid, t.ask) for t in stored] == [
        (t.time, t.last, t.bid, t.ask) for t in sent
    ]


async def test_a_full_queue_makes_the_reader_wait_for_the_store(
    parts: Embedded, ingestor: TickIngestor
) -> None:
    # given a queue of at most 10 ticks
    handover = TickHandover(ingestor, TickSource.BINANCE, limit=10)
    health = ingestor.health.of(TickSource.BINANCE)
    # when 35 ticks are queued
    for tick in ticks(35):
        await handover.put(tick)
    # then the reader had to wait for writes: at most 10 were still queued at the end
    assert health.stored >= 25
    await handover.flush()
    assert health.stored == 35


async def test_abandoning_drops_what_is_queued_and_stops_the_writer(
    parts: Embedded, ingestor: TickIngestor
) -> None:
    handover = TickHandover(ingestor, TickSource.BINANCE)
    for tick in ticks(50):
        await handover.put(tick)
    handover.abandon()
    await handover.flush()  # returns: the writer is gone
    assert ingestor.health.of(TickSource.BINANCE).stored == 0
