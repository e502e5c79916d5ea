"""Tick ingestion on the embedded SQLite store and the in-process hub.

What a writer is told is what was stored, and what subscribers see is what a
later query finds: a tick is published only after its batch is written, a
replayed batch is neither stored nor published again, and a conflicting one
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from graphql_api.market.ingest import TickIngestor, batch_key
from graphql_api.market.tick_validation import TickDraft
from graphql_api.platform.errors import ErrorCode
from graphql_api.realtime.events import decode_tick
from graphql_api.realtime.hub import Mailbox
from storage.timeseries import Tick
from storage.timeseries.base import BatchOutcome, TickBatch
from tests.graphql_api.conftest import Embedded

D = Decimal
SYMBOL = "600519.SH"
CHANNEL = f"ticks.{SYMBOL}"


def tick(last: str, *, at: datetime | None = None, volume: str = "100") -> Tick:
    price = D(last)
    return Tick(SYMBOL, at or datetime.now(UTC), price, price, price, D(volume))


@pytest.fixture
async def ingestor(embedded: Embedded) -> AsyncIterator[TickIngestor]:
    running = TickIngestor(embedded.store, embedded.hub, embedded.catalog, flush_interval=0.01)
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 5)


async def received(mailbox: Mailbox) -> Tick:
    return decode_tick((await asyncio.wait_for(mailbox.get(), 5)).message)


async def stored(embedded: Embedded) -> list[Tick]:
    return await embedded.store.ticks(SYMBOL, None, None, 1000)


async def test_ticks_are_stored_before_subscribers_see_them(
    embedded: Embedded, ingestor: TickIngestor
) -> None:
    ticks = [tick("1500.00"), tick("1500.01"), tick("1500.02")]
    async with embedded.hub.subscribe([CHANNEL], conflate=False) as mailbox:
        writing = asyncio.create_task(ingestor.ingest(ticks))
        first = await received(mailbox)
        # the moment a subscriber has a tick, a query finds it
        assert first in await stored(embedded)
        assert await writing is BatchOutcome.STORED
        assert [first, await received(mailbox), await received(mailbox)] == ticks
    assert await stored(embedded) == ticks
    assert ingestor.written == 3


async def test_a_replayed_batch_is_stored_and_published_once(
    embedded: Embedded, ingestor: TickIngestor
) -> None:
    ticks = [tick("1500.00"), tick("1500.01")]
    key = batch_key(embedded.demo_user_id, "batch-1", ticks)
    async with embedded.hub.subscribe([CHANNEL], conflate=False) as mailbox:
        assert await ingestor.ingest(ticks, key) is BatchOutcome.STORED
        assert await ingestor.ingest(ticks, key) is BatchOutcome.REPLAYED
        marker = tick("1500.09")
        assert await ingestor.ingest([marker]) is BatchOutcome.STORED
        # the replay published nothing: after the first two comes the marker
        assert [await received(mailbox) for _ in range(3)] == [*ticks, marker]
    assert await stored(embedded) == [*ticks, marker]
    assert ingestor.written == 3


async def test_a_key_reused_for_other_ticks_stores_and_publishes_nothing(
    embedded: Embedded, ingestor: TickIngestor
) -> None:
    first = [tick("1500.00")]
    assert await ingestor.ingest(first, batch_key(1, "b", first)) is BatchOutcome.STORED
    other = [tick("1600.00")]
    async with embedded.hub.subscribe([CHANNEL], conflate=False) as mailbox:
        # same owner and batch id, other ticks: the digest differs
        conflicting = batch_key(1, "b", other)
        assert conflicting != batch_key(1, "b", first)
        assert await ingestor.ingest(other, conflicting) is BatchOutcome.CONFLICT
        marker = tick("1500.09")
        await ingestor.ingest([marker])
        assert await received(mailbox) == marker
    assert await stored(embedded) == [*first, marker]


async def test_a_late_tick_is_kept_as_history_and_does_not_become_the_quote(
    embedded: Embedded, ingestor: TickIngestor
) -> None:
    now = datetime.now(UTC)
    await ingestor.ingest([tick("1500.00", at=now)])
    late = tick("1400.00", at=now - timedelta(minutes=5))
    async with embedded.hub.subscribe([CHANNEL], conflate=False) as mailbox:
        assert await ingestor.ingest([late]) is BatchOutcome.STORED
        assert await received(mailbox) == late  # the matcher and engines judge lateness
    assert await stored(embedded) == [late, tick("1500.00", at=now)]
    latest = await embedded.store.latest_ticks([SYMBOL])
    assert latest[SYMBOL].last == D("1500.00")


async def test_writers_in_one_flush_share_a_write_and_each_hears_its_own_outcome(
    embedded: Embedded,
) -> None:
    keyed = [tick("1500.02")]
    key = batch_key(1, "k", keyed)
    assert await embedded.store.write_batches([TickBatch(keyed, key)]) == [BatchOutcome.STORED]
    # a batch fills at 3 ticks: the two calls below are written together, at once
    ingestor = TickIngestor(
        embedded.store, embedded.hub, embedded.catalog, flush_interval=60, batch_size=3
    )
    task = asyncio.create_task(ingestor.run())
    try:
        plain = [tick("1500.00"), tick("1500.01")]
        outcomes = await asyncio.wait_for(
            asyncio.gather(ingestor.ingest(plain), ingestor.ingest(keyed, key)), 5
        )
        assert list(outcomes) == [BatchOutcome.STORED, BatchOutcome.REPLAYED]
        assert ingestor.written == 2
        assert sorted(await stored(embedded), key=lambda t: t.time) == [*keyed, *plain]
    finally:
        ingestor.stop()
        await asyncio.wait_for(task, 5)


async def test_a_call_bigger_than_a_batch_is_written_whole(embedded: Embedded) -> None:
    ingestor = TickIngestor(embedded.store, embedded.hub, embedded.catalog, batch_size=2)
    task = asyncio.create_task(ingestor.run())
    try:
        ticks = [tick(f"1500.0{n}") for n in range(5)]
        assert await ingestor.ingest(ticks) is BatchOutcome.STORED
        assert await stored(embedded) == ticks
    finally:
        ingestor.stop()
        await asyncio.wait_for(task, 5)


async def test_stopping_flushes_what_is_queued_then_refuses_new_ticks(
    embedded: Embedded,
) -> None:
    # (stop waits out the current flush interval, so keep it short)
    ingestor = TickIngestor(embedded.store, embedded.hub, embedded.catalog, flush_interval=0.5)
    task = asyncio.create_task(ingestor.run())
    queued = asyncio.create_task(ingestor.ingest([tick("1500.00")]))
    await asyncio.sleep(0.05)
    assert not queued.done()  # waiting for its batch
    ingestor.stop()
    await asyncio.wait_for(task, 5)
    assert await queued is BatchOutcome.STORED
    assert len(await stored(embedded)) == 1
    with pytest.raises(RuntimeError, match="closed"):
        await ingestor.ingest([tick("1500.01")])


async def test_nothing_to_ingest_is_stored_at_once(embedded: Embedded) -> None:
    ingestor = TickIngestor(embedded.store, embedded.hub, embedded.catalog)
    assert await ingestor.ingest([]) is BatchOutcome.STORED  # no flush loop needed


async def test_validation_is_all_or_nothing_and_names_each_bad_tick(
    embedded: Embedded,
) -> None:
    ingestor = TickIngestor(embedded.store, embedded.hub, embedded.catalog)
    now = datetime.now(UTC)

    def draft(symbol: str, last: str) -> TickDraft:
        return TickDraft(symbol, now, D(last), None, None, D(100))

    good, errors = await ingestor.validate([draft(SYMBOL, "1500.00"), draft("BTCUSDT", "95000")])
    assert errors == [] and [t.symbol for t in good] == [SYMBOL, "BTCUSDT"]
    good, errors = await ingestor.validate(
        [draft(SYMBOL, "1500.00"), draft("NOPE", "1"), draft(SYMBOL, "1500.001")], field="input"
    )
    assert good == []
    assert [(e.field, e.code) for e in errors] == [
        ("input.1.symbol", ErrorCode.UNKNOWN_SYMBOL),
        # bid and ask default to the last price, and are refused with it
        ("input.2.last", ErrorCode.INVALID_PRECISION),
        ("input.2.bid", ErrorCode.INVALID_PRECISION),
        ("input.2.ask", ErrorCode.INVALID_PRECISION),
    ]


def test_a_batch_key_digest_covers_every_field_of_every_tick() -> None:
    at = datetime(2025, 6, 2, tzinfo=UTC)
    base = Tick(SYMBOL, at, D("1"), D("1"), D("1"), D("1"))
    variants = [
        Tick("BTCUSDT", at, D("1"), D("1"), D("1"), D("1")),
        Tick(SYMBOL, at + timedelta(microseconds=1), D("1"), D("1"), D("1"), D("1")),
        Tick(SYMBOL, at, D("2"), D("1"), D("1"), D("1")),
        Tick(SYMBOL, at, D("1"), D("2"), D("1"), D("1")),
        Tick(SYMBOL, at, D("1"), D("1"), D("2"), D("1")),
        Tick(SYMBOL, at, D("1"), D("1"), D("1"), D("2")),
    ]
    digests = {batch_key(1, "b", [t]).digest for t in [base, *variants]}
    assert len(digests) == 1 + len(variants)
    assert batch_key(1, "b", [base]) == batch_key(1, "b", [base])
    assert batch_key(1, "b", [base, base]).digest != batch_key(1, "b", [base]).digest
