"""What every market-data source is (a name, the symbols it owns, a ``run``), and what a
source that also keeps history provides: daily bars for a date range."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from graphql_api.market.ingest import TickIngestor
    from graphql_api.market.source_health import TickSource

BAR_HEADER = "date,open,high,low,close,volume"
"""The first line of every daily-bar stream: the ``import-bars`` CSV header."""


class SourceConfigError(Exception):
    """The source cannot run as configured (a missing or bad replay file, an unknown
    symbol). Retrying cannot help, so the supervisor reports it and stops the source
    instead of restarting it in a loop."""


class MarketDataSource(Protocol):
    """A producer of live ticks.

    ``run`` hands its ticks to ``ingestor.ingest(..., source=self.name)`` (validation
    is the source's job: the ingestor stores what it is given). It returns when the
    source has nothing more to deliver (a replay that does not loop), raises
    :class:`SourceConfigError` when it cannot run at all, and raises anything else
    on a fault worth a reconnect (a dropped connection, a stalled stream).
    """

    @property
    def name(self) -> TickSource: ...

    def symbols(self) -> frozenset[str]:
        """The symbols this source quotes; no other source quotes them."""
        ...

    async def run(self, ingestor: TickIngestor) -> None: ...


@runtime_checkable
class DailyBarSource(Protocol):
    """A source that also provides history: a symbol's daily bars for a date range
    (``quantgraph backfill-bars``). The replay and Binance sources are; the random
    walk has no history to give.

    ``daily_bars`` yields the days from ``start`` to ``end`` inclusive as lines of
    the ``import-bars`` CSV (:data:`BAR_HEADER` first), in chunks as they arrive
    (a remote source yields one chunk per request, so progress can be shown).
    Lines, not parsed bars: every row then goes through the one daily-bar import
    (tick grid, high/low, duplicates, the time window), which reports bad rows
    with their line numbers and writes in batches. :class:`SourceConfigError` when
    the range is empty or the source cannot serve the symbol at all; transport
    errors (``httpx.HTTPError``, ``OSError``) pass through.
    """

    @property
    def name(self) -> TickSource: ...

    def daily_bars(self, symbol: str, start: date, end: date) -> AsyncIterator[list[str]]: ...


def check_range(start: date, end: date) -> None:
    """A date range every daily-bar source accepts: ``start`` not after ``end``."""
    if start > end:
        raise SourceConfigError(f"the range ends ({end}) before it starts ({start})")
