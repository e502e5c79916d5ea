"""The simulated market feed: a seeded random walk per symbol.

It stands in for an exchange connection in the embedded default, so a fresh
install shows live prices at once. Each tick moves one symbol's last price by
a small Gaussian step on its tick grid, with a spread of one to three ticks.
"""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime
from decimal import Decimal

import structlog

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import TickSource
from graphql_api.market.symbols import SymbolSpec, quantize
from storage.timeseries import Tick

log = structlog.get_logger(__name__)


class RandomWalk:
    """Parameters:
    specs: the instruments to quote.
    start_prices: where each walk starts (latest known price).
    seed: makes the sequence reproducible.
    """

    def __init__(
        self, specs: list[SymbolSpec], start_prices: dict[str, Decimal], seed: int
    ) -> None:
        self._specs = [spec for spec in specs if spec.code in start_prices]
        self._prices = {spec.code: start_prices[spec.code] for spec in self._specs}
        self._rng = random.Random(seed)

    def next_tick(self, now: datetime) -> Tick:
        spec = self._rng.choice(self._specs)
        last = self._prices[spec.code]
        step = Decimal(repr(math.exp(self._rng.gauss(0, 0.0008))))
        price = quantize(last * step, spec.tick_size)
        self._prices[spec.code] = price
        bid = price - spec.tick_size * self._rng.randint(0, 1)
        ask = price + spec.tick_size * self._rng.randint(1, 2)
        bid = max(bid, spec.tick_size)
        volume = spec.lot_size * self._rng.randint(1, 50)
        return Tick(spec.code, now, price, bid, ask, volume)


async def run_simulated_feed(
    walk: RandomWalk, ingestor: TickIngestor, *, ticks_per_second: float
) -> None:
    """Emit about ``ticks_per_second`` ticks, in 100 ms slices, until cancelled.

    A feed that fell behind (a slow write, a paused process) skips ahead to now,
    as a live market would, rather than replaying the slices it missed as a burst:
    the rate stays the configured one, and the missed slices are never emitted.
    """
    ingestor.health.expect(TickSource.SIMULATED)
    loop = asyncio.get_running_loop()
    slice_seconds = 0.1
    owed = 0.0
    next_at = loop.time()
    while True:
        owed += ticks_per_second * slice_seconds
        count, owed = int(owed), owed - int(owed)
        if count:
            now = datetime.now(UTC)
            try:
                ticks = [walk.next_tick(now) for _ in range(count)]
                await ingestor.ingest(ticks, source=TickSource.SIMULATED)
            except Exception as error:  # the feed must outlive a failed batch
                log.warning("simulated ticks not stored", error=str(error))
        next_at += slice_seconds
        behind = loop.time() - next_at
        if behind > 0:
            next_at += behind  # skip the missed slices: no backlog to catch up
        await asyncio.sleep(next_at - loop.time())
