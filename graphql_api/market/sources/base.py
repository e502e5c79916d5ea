"""What every market-data source is: a name, the symbols it owns, and a ``run``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from graphql_api.market.ingest import TickIngestor
    from graphql_api.market.source_health import TickSource


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
