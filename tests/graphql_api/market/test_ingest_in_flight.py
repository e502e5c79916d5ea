"""Several tick writes on their way at once (``writes_in_flight``).

A tick that arrives while a write is on its way does not wait for that write's
round trip; subscribers still see ticks in the order they were handed in, and
the minute bars stay exactly the fold of the stored ticks however the writes
interleave in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.market.ingest import TickIngestor
from graphql_api.realtime.events import decode_tick
from graphql_api.realtime.hub import Mailbox
from storage.timeseries import Tick
from storage.timeseries.base import BatchOutcome, TickBatch, TimeSeriesWriteError
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.conftest import sql_database
from tests.graphql_api.conftest import Embedded, open_embedded
from tests.support.minute_bars import assert_bar_ends_are_their_ticks, assert_bars_match_ticks

SYMBOL = "600519.SH"
CHANNEL = f"ticks.{SYMBOL}"


def tick(last: str, at: datetime | None = None) -> Tick:
    price = Decimal(last)
    return Tick(SYMBOL, at or datetime.now(UTC), price, price, price, Decimal(100))


class FirstWriteHeld(SqlTimeSeriesStore):
    """The real store, except that its first write waits for ``release`` (and then
    fails, with ``fail_first``) before it reaches the database."""

    def __init__(self, engine: AsyncEngine, *, fail_first: bool = False) -> None:
        super().__init__(engine)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._fail_first = fail_first

    async def write_batches(self, batches: Sequence[TickBatch]) -> list[BatchOutcome]:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
            if self._fail_first:
                raise TimeSeriesWriteError("the database went away")
        return await super().write_batches(batches)


class Ingestors:
    """Runs the ingestors a test starts; :meth:`stop` lets them finish their writes."""

    def __init__(self) -> None:
        self._running: list[tuple[TickIngestor, asyncio.Task[None]]] = []

    def start(self, ingestor: TickIngestor) -> TickIngestor:
        self._running.append((ingestor, asyncio.create_task(ingestor.run())))
        return ingestor

    async def stop(self) -> None:
        for ingestor, _ in self._running:
            ingestor.stop()
        await asyncio.wait_for(asyncio.gather(*(task for _, task in self._running)), 10)
        self._running.clear()


@pytest.fixture
async def ingestors() -> AsyncIterator[Ingestors]:
    running = Ingestors()
    try:
        yield running
    finally:
        await running.stop()


def held_ingestor(
    embedded: Embedded, ingestors: Ingestors, *, writes_in_flight: int, fail_first: bool = False
) -> tuple[TickIngestor, FirstWriteHeld]:
    """A running ingestor over the embedded store whose first write is held."""
    store = FirstWriteHeld(embedded.engine, fail_first=fail_first)
    ingestor = TickIngestor(
        store, embedded.hub, embedded.catalog, writes_in_flight=writes_in_flight
    )
    return ingestors.start(ingestor), store


async def received(mailbox: Mailbox, count: int) -> list[Tick]:
    return [decode_tick((await asyncio.wait_for(mailbox.get(), 5)).message) for _ in range(count)]


async def test_a_write_on_its_way_does_not_hold_up_the_next_and_delivery_keeps_their_order(
    embedded: Embedded, ingestors: Ingestors
) -> None:
    ingestor, store = held_ingestor(embedded, ingestors, writes_in_flight=2)
    first, second = tick("1500.00"), tick("1500.01")
    async with embedded.hub.subscribe([CHANNEL], conflate=False) as mailbox:
        # given a write held on its way to the database
        held = asyncio.create_task(ingestor.ingest([first]))
        await asyncio.wait_for(store.holding.wait(), 5)
        # a tick handed in meanwhile is written and its writer answered
        assert await asyncio.wait_for(ingestor.ingest([second]), 5) is BatchOutcome.STORED
        assert await embedded.store.ticks(SYMBOL, None, None, 10) == [second]
        # but no subscriber sees it before the tick handed in before it
        await asyncio.sleep(0.05)
        assert mailbox.waiting() == 0
        store.release.set()
        assert await asyncio.wait_for(held, 5) is BatchOutcome.STORED
        assert await received(mailbox, 2) == [first, second]


async def test_one_write_at_a_time_makes_the_next_wait(
    embedded: Embedded, ingestors: Ingestors
) -> None:
    ingestor, store = held_ingestor(embedded, ingestors, writes_in_flight=1)
    held = asyncio.create_task(ingestor.ingest([tick("1500.00")]))
    await asyncio.wait_for(store.holding.wait(), 5)
    waiting = asyncio.create_task(ingestor.ingest([tick("1500.01")]))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    store.release.set()
    outcomes = await asyncio.wait_for(asyncio.gather(held, waiting), 5)
    assert list(outcomes) == [BatchOutcome.STORED, BatchOutcome.STORED]


async def test_a_failed_write_does_not_hold_back_the_ticks_after_it(
    embedded: Embedded, ingestors: Ingestors
) -> None:
    ingestor, store = held_ingestor(embedded, ingestors, writes_in_flight=2, fail_first=True)
    lost, kept = tick("1500.00"), tick("1500.01")
    async with embedded.hub.subscribe([CHANNEL], conflate=False) as mailbox:
        failing = asyncio.create_task(ingestor.ingest([lost]))
        await asyncio.wait_for(store.holding.wait(), 5)
        assert await asyncio.wait_for(ingestor.ingest([kept]), 5) is BatchOutcome.STORED
        store.release.set()
        with pytest.raises(TimeSeriesWriteError):
            await asyncio.wait_for(failing, 5)
        # the failed write's tick is neither stored nor seen; the next one is both
        assert await received(mailbox, 1) == [kept]
        await asyncio.sleep(0.05)
        assert mailbox.waiting() == 0
    assert await embedded.store.ticks(SYMBOL, None, None, 10) == [kept]


@pytest.mark.postgres
async def test_writes_side_by_side_keep_the_minute_bars_the_fold_of_the_ticks(
    request: pytest.FixtureRequest, ingestors: Ingestors
) -> None:
    async with sql_database(request, "postgresql") as url, open_embedded(url) as parts:
        ingestor = ingestors.start(
            TickIngestor(parts.store, parts.hub, parts.catalog, writes_in_flight=4),
        )
        # twenty writers hand in ticks of the same few minutes, out of time order,
        # so the writes on their way at once merge into the same bars
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)

        async def writer(n: int) -> list[BatchOutcome]:
            outcomes = []
            for k in range(10):
                at = base + timedelta(seconds=(n * 37 + k * 53) % 180, microseconds=n)
                price = f"1500.{(n * 10 + k) % 100:02d}"
                outcomes.append(await ingestor.ingest([tick(price, at), tick(price, at)]))
            return outcomes

        results = await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(20))), 30)
        assert all(outcome is BatchOutcome.STORED for row in results for outcome in row)
        assert len(await parts.store.ticks(SYMBOL, None, None, 10_000)) == 400
        await assert_bars_match_ticks(parts.store, SYMBOL)
        await assert_bar_ends_are_their_ticks(parts.engine, SYMBOL)
        await ingestors.stop()
