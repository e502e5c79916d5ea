"""The random walk (:mod:`graphql_api.market.simulated_feed`) as a market-data source."""

from __future__ import annotations

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.simulated_feed import RandomWalk, run_simulated_feed
from graphql_api.market.source_health import TickSource


class SimulatedSource:
    """Parameters:
    walk: the seeded random walk (only over the symbols no other source owns).
    ticks_per_second: the feed's rate.
    """

    def __init__(self, walk: RandomWalk, *, ticks_per_second: float) -> None:
        self._walk = walk
        self._ticks_per_second = ticks_per_second

    @property
    def name(self) -> TickSource:
        return TickSource.SIMULATED

    def symbols(self) -> frozenset[str]:
        return self._walk.symbols()

    async def run(self, ingestor: TickIngestor) -> None:
        # A failed batch is logged and skipped inside; the walk itself never fails.
        await run_simulated_feed(self._walk, ingestor, ticks_per_second=self._ticks_per_second)
