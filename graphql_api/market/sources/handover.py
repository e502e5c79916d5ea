"""Handing a stream's ticks to the ingest path without stopping to read.

A source that awaited each tick's write before reading the next message would
store one tick per database round trip (about 540 a second on SQLite), far
below a busy exchange stream. Here the reader only queues: ticks that arrive
while a write is in flight ride together in the next one (the group-commit
shape), in arrival order. At most ``limit`` ticks wait; beyond that the reader
waits for the write, so a slow store pushes back on the socket (its TCP window)
instead of growing memory.
"""

from __future__ import annotations

import asyncio

import structlog

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import TickSource
from storage.timeseries import Tick

log = structlog.get_logger(__name__)


class TickHandover:
    """Parameters:
    ingestor: the ingest path (validation done by the source; storage and publish).
    source: whom the health metrics count the ticks for.
    limit: the most ticks waiting for a write before the reader waits too.
    """

    def __init__(self, ingestor: TickIngestor, source: TickSource, *, limit: int = 10_000) -> None:
        self._ingestor = ingestor
        self._source = source
        self._limit = limit
        self._pending: list[Tick] = []
        self._writer: asyncio.Task[None] | None = None

    async def put(self, tick: Tick) -> None:
        """Queue ``tick``; returns at once unless ``limit`` ticks are already waiting."""
        if len(self._pending) >= self._limit and self._writer is not None:
            await asyncio.wait([self._writer])
        self._pending.append(tick)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name=f"handover-{self._source.value}"
            )

    async def flush(self) -> None:
        """Wait until every queued tick has been handed over (stored, or its failure logged)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    def abandon(self) -> None:
        """Stop writing (the source is being cancelled): what is queued is dropped."""
        self._pending.clear()
        if self._writer is not None:
            self._writer.cancel()

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._ingestor.ingest(batch, source=self._source)
            except Exception as error:
                # The stream itself is fine: the batch is lost (counted in the source's
                # failures by the ingestor), not the connection.
                log.warning(
                    "ticks not stored",
                    source=self._source.value,
                    ticks=len(batch),
                    error=str(error),
                )
