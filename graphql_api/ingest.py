"""Tick ingestion: validate, batch-write to the time-series store, then publish.

Writers (the simulated feed, ``ingestTicks``, imports) hand ticks to one
:class:`TickIngestor` per process. It groups them into batches (a flush every
``flush_interval`` or ``batch_size`` ticks, whichever comes first), writes each
batch in one atomic call, and only then publishes the ticks — so a subscriber
never sees a tick that a later query cannot find. ``ingest`` returns once its
ticks are durable, which is the back-pressure writers feel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog

from graphql_api.errors import UserError
from graphql_api.events import encode_tick, tick_channel
from graphql_api.hub import Hub
from graphql_api.market_data_limits import DEFAULT_MAX_TICK_AGE_YEARS, TimeWindow
from graphql_api.symbols import SymbolCatalog
from graphql_api.tick_validation import TickDraft, check_tick
from storage.timeseries import Tick, TimeSeriesStore

log = structlog.get_logger(__name__)
# Ticks per Redis pipeline: one round trip each, without building huge buffers.
_PUBLISH_CHUNK = 500


class TickIngestor:
    """Parameters:
    store: where batches are written.
    hub: where written ticks are published.
    catalog: symbol metadata for validation.
    flush_interval: the longest a tick waits for its batch.
    batch_size: a batch is written early once this many ticks wait.
    max_future: how far ahead of the server clock a tick time may be.
    max_age_years: how far back a tick time may be.
    """

    def __init__(
        self,
        store: TimeSeriesStore,
        hub: Hub,
        catalog: SymbolCatalog,
        *,
        flush_interval: float = 0.05,
        batch_size: int = 1000,
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
        self._pending: list[Tick] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = False
        self.written = 0

    async def validate(
        self, drafts: Sequence[TickDraft], *, field: str = "ticks"
    ) -> tuple[list[Tick], list[UserError]]:
        """Check every draft; return the ticks only when all of them are valid."""
        specs = await self._catalog.get_many(sorted({d.symbol for d in drafts}))
        window = TimeWindow.around(datetime.now(UTC), self._max_age_years, self._max_future)
        errors: list[UserError] = []
        ticks: list[Tick] = []
        for index, draft in enumerate(drafts):
            tick, problems = check_tick(draft, specs.get(draft.symbol), window, f"{field}.{index}")
            errors.extend(problems)
            if tick is not None:
                ticks.append(tick)
        return (ticks, errors) if not errors else ([], errors)

    async def ingest(self, ticks: Sequence[Tick]) -> None:
        """Queue validated ticks and wait until they are written (or the write failed)."""
        if self._closed:
            raise RuntimeError("tick ingestor is closed")
        if not ticks:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.extend(ticks)
        self._waiters.append(waiter)
        self._wakeup.set()
        if len(self._pending) >= self._batch_size:
            self._full.set()
        await waiter

    async def run(self) -> None:
        """The flush loop; returns after :meth:`stop`, once everything queued is written."""
        while not self._closed:
            await self._wakeup.wait()
            if not self._closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._flush_interval)
            await self._flush()
        await self._flush()

    def stop(self) -> None:
        """Refuse new ticks and let :meth:`run` finish after a final flush.

        Never cancel ``run`` mid-write: a cancelled batch would be lost although
        its writers were told nothing yet.
        """
        self._closed = True
        self._wakeup.set()

    async def _flush(self) -> None:
        self._wakeup.clear()
        self._full.clear()
        batch, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        if not batch:
            return
        try:
            for start in range(0, len(batch), self._batch_size):
                await self._store.write_ticks(batch[start : start + self._batch_size])
        except Exception as error:
            log.error("tick batch failed", size=len(batch), error=str(error))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        self.written += len(batch)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        # In order (each symbol's ticks stay ordered on the bus), one round trip per
        # chunk. Best effort: the ticks are stored and their writers answered; a bus
        # outage must neither fail them nor stop this loop (live subscribers miss them).
        messages = [(tick_channel(tick.symbol), encode_tick(tick)) for tick in batch]
        for start in range(0, len(messages), _PUBLISH_CHUNK):
            try:
                await self._hub.publish_many(messages[start : start + _PUBLISH_CHUNK])
            except Exception as error:
                log.warning("tick publish failed", unpublished=len(batch) - start, error=str(error))
                break
