"""Tick ingestion: validate, batch-write to the time-series store, then publish.

Writers (the simulated feed, ``ingestTicks``, imports) hand ticks to one
:class:`TickIngestor` per process. It groups their calls into batches and only
then publishes the ticks — so a subscriber never sees a tick that a later
query cannot find. Publishing does not hold up the next batch: this process's
subscribers get the ticks at once and the bus gets them in the background
(:meth:`Hub.deliver`). ``ingest`` returns once its ticks are durable, which is the
back-pressure writers feel.

Batches form by group commit: a writer task writes whatever has arrived as
soon as its previous write is done, so a lone tick is written at once and,
under load, everything that arrived during one write goes into the next. With
``writes_in_flight`` above one, that many writers do so side by side, so a tick
that arrives during a write does not wait for its round trip; their ticks are
still delivered in the order the writes began. A ``flush_interval`` above zero
makes a batch also wait that long for company (or until ``batch_size`` ticks
wait), which trades latency for fewer writes.

A call is never split: each group of whole calls (up to ``batch_size`` ticks,
or one bigger call alone) is one atomic store write, and exactly that group's
writers share its outcome. So what a writer is told is what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from graphql_api.market.source_health import MarketDataHealth, TickSource
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.market.tick_validation import TickDraft, check_tick
from graphql_api.market.value_ranges import TimeWindow
from graphql_api.platform.errors import UserError
from graphql_api.platform.settings import DEFAULT_MAX_TICK_AGE_YEARS
from graphql_api.realtime.channels import tick_channel
from graphql_api.realtime.events import encode_tick
from graphql_api.realtime.hub import Hub
from storage.timeseries import Tick, TimeSeriesStore
from storage.timeseries.base import BatchKey, BatchOutcome, TickBatch

_VALIDATION_SLICE = 1_000
"""Ticks validated between two turns of the event loop."""

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Call:
    """One writer's ticks and the future that tells it their outcome."""

    batch: TickBatch
    outcome: asyncio.Future[BatchOutcome]
    source: TickSource


def batch_key(owner_id: int, batch_id: str, ticks: Sequence[Tick]) -> BatchKey:
    """The idempotency key of a feed's batch; the digest covers every field of every tick."""
    digest = hashlib.sha256()
    for tick in ticks:
        fields = (tick.symbol, tick.time.isoformat(), tick.last, tick.bid, tick.ask, tick.volume)
        digest.update("|".join(str(field) for field in fields).encode())
        digest.update(b"\n")
    return BatchKey(owner_id, batch_id, digest.hexdigest())


class TickIngestor:
    """Parameters:
    store: where batches are written.
    hub: where written ticks are published.
    catalog: symbol metadata for validation.
    flush_interval: how long a batch waits for company before it is written
        (0: not at all, group commit).
    batch_size: a batch is written early once this many ticks wait.
    writes_in_flight: how many batches may be on their way to the store at once
        (PostgreSQL takes several; SQLite's one write lock makes more than one moot).
    max_future: how far ahead of the server clock a tick time may be.
    max_age_years: how far back a tick time may be.
    """

    def __init__(
        self,
        store: TimeSeriesStore,
        hub: Hub,
        catalog: SymbolCatalog,
        *,
        flush_interval: float = 0.0,
        batch_size: int = 1000,
        writes_in_flight: int = 1,
        max_future: timedelta = timedelta(seconds=5),
        max_age_years: int = DEFAULT_MAX_TICK_AGE_YEARS,
    ) -> None:
        self._store = store
        self._hub = hub
        self._catalog = catalog
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_future = max_future
        self._max_age_years = max_age_years
        self._writes_in_flight = writes_in_flight
        self._pending: list[_Call] = []
        self._pending_rows = 0
        # Writes are numbered as they begin; their ticks are delivered in that order.
        self._next_write = 0
        self._next_delivery = 0
        self._finished: dict[int, list[Tick]] = {}
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = False
        self.written = 0
        self.health = MarketDataHealth()

    async def validate(
        self, drafts: Sequence[TickDraft], *, field: str = "ticks"
    ) -> tuple[list[Tick], list[UserError]]:
        """Check every draft; return the ticks only when all of them are valid."""
        specs = await self._catalog.get_many(sorted({d.symbol for d in drafts}))
        window = TimeWindow.around(datetime.now(UTC), self._max_age_years, self._max_future)
        errors: list[UserError] = []
        ticks: list[Tick] = []
        for index, draft in enumerate(drafts):
            if index and index % _VALIDATION_SLICE == 0:
                # A call carries up to 10,000 ticks: let other work (timers,
                # connects, deliveries) run between slices.
                await asyncio.sleep(0)
            tick, problems = check_tick(draft, specs.get(draft.symbol), window, f"{field}.{index}")
            errors.extend(problems)
            if tick is not None:
                ticks.append(tick)
        return (ticks, errors) if not errors else ([], errors)

    async def ingest(
        self,
        ticks: Sequence[Tick],
        key: BatchKey | None = None,
        *,
        source: TickSource = TickSource.API,
    ) -> BatchOutcome:
        """Queue validated ticks and wait until they are written (or the write failed).

        All of them are stored or none; with a ``key``, a retry of a batch that
        was stored already is not stored again (``REPLAYED``). ``source`` is whom
        the market-data health metrics count them for.
        """
        if self._closed:
            raise RuntimeError("tick ingestor is closed")
        if not ticks:
            return BatchOutcome.STORED
        outcome: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(TickBatch(list(ticks), key), outcome, source))
        self._pending_rows += len(ticks)
        self._wakeup.set()
        if self._pending_rows >= self._batch_size:
            self._full.set()
        return await outcome

    async def run(self) -> None:
        """The writers; returns after :meth:`stop`, once everything queued is written."""
        await asyncio.gather(*(self._writer() for _ in range(self._writes_in_flight)))

    def stop(self) -> None:
        """Refuse new ticks and let :meth:`run` finish after a final flush.

        Never cancel ``run`` mid-write: a cancelled batch would be lost although
        its writers were told nothing yet.
        """
        self._closed = True
        self._wakeup.set()

    async def _writer(self) -> None:
        """Write the next group of waiting calls, again and again; one of ``writes_in_flight``."""
        while self._pending or not self._closed:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._flush_interval > 0 and not self._closed and not self._full.is_set():
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can
                # swallow a cancel.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._full.wait()
            # A bus far behind holds the writes back, as an awaited publish did.
            await self._hub.relay.room()
            if self._pending:
                await self._write_group(*self._next_group())

    def _next_group(self) -> tuple[list[_Call], int]:
        """The waiting calls that go into one write (whole calls, in order, up to
        ``batch_size`` ticks or one bigger call alone), and its place in the
        delivery order."""
        taken = rows = 0
        for call in self._pending:
            size = len(call.batch.ticks)
            if taken and rows + size > self._batch_size:
                break
            taken += 1
            rows += size
        group = self._pending[:taken]
        del self._pending[:taken]
        self._pending_rows -= rows
        if self._pending_rows < self._batch_size:
            self._full.clear()
        place = self._next_write
        self._next_write += 1
        return group, place

    async def _write_group(self, group: list[_Call], place: int) -> None:
        """One atomic write for the group; its writers, and only they, share the outcome."""
        health = self.health
        started = time.monotonic()
        try:
            outcomes = await self._store.write_batches([call.batch for call in group])
        except Exception as error:
            health.batch_seconds.observe(time.monotonic() - started)
            health.failed_batches += 1
            rows = sum(len(call.batch.ticks) for call in group)
            log.error("tick batch failed", calls=len(group), size=rows, error=str(error))
            for call in group:
                health.failed(call.source, len(call.batch.ticks))
                if not call.outcome.done():
                    call.outcome.set_exception(error)
            self._deliver_in_order(place, [])
            return
        now = time.monotonic()
        health.batch_seconds.observe(now - started)
        stored: list[Tick] = []
        for call, outcome in zip(group, outcomes, strict=True):
            if outcome is BatchOutcome.STORED:
                stored.extend(call.batch.ticks)
                health.stored(call.source, len(call.batch.ticks), now)
            if not call.outcome.done():
                call.outcome.set_result(outcome)
        self.written += len(stored)
        self._deliver_in_order(place, stored)

    def _deliver_in_order(self, place: int, stored: list[Tick]) -> None:
        """Hand the ticks of every write finished up to here to the hub, in the order
        the writes began: a write that finishes early waits for those before it, so
        subscribers see each symbol's ticks in the order they were handed in."""
        self._finished[place] = stored
        while self._next_delivery in self._finished:
            ticks = self._finished.pop(self._next_delivery)
            self._next_delivery += 1
            # This process's subscribers have them now; the relay publishes them for
            # the other processes, in order, in the background. Best effort: the
            # ticks are stored and their writers answered; a bus outage must
            # neither fail them nor stop the writers (other processes' live
            # subscribers miss them).
            if not ticks:
                continue
            try:
                self._hub.deliver(
                    [(tick_channel(tick.symbol), encode_tick(tick)) for tick in ticks]
                )
            except Exception as error:  # the hub closed under a last write, say
                log.warning("tick delivery failed", undelivered=len(ticks), error=repr(error))
