"""The simulated market feed: a seeded random walk per symbol.

It stands in for an exchange connection in the embedded default, so a fresh
install shows live prices at once. Each tick moves one symbol's last price by
a small Gaussian step on its tick grid, with a spread of one to three ticks.
Only symbols whose trading session is open at that moment are quoted (a closed
market prints no trades), unless the walk ignores sessions (``FEED_IGNORE_SESSIONS``,
for demos of symbols with real hours at night); the demo symbols trade around the
clock either way.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
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
    ignore_sessions: quote every symbol at any hour.
    current: a symbol's spec as it is now (the catalogue's), so a changed session or
        tick size applies to the walk at once; by default the specs given.
    """

    def __init__(
        self,
        specs: list[SymbolSpec],
        start_prices: dict[str, Decimal],
        seed: int,
        *,
        ignore_sessions: bool = False,
        current: Callable[[str], SymbolSpec | None] | None = None,
    ) -> None:
        self._specs = [spec for spec in specs if spec.code in start_prices]
        self._prices = {spec.code: start_prices[spec.code] for spec in self._specs}
        self._rng = random.Random(seed)
        self._ignore_sessions = ignore_sessions
        self._current = current

    def symbols(self) -> frozenset[str]:
        """The symbols the walk quotes (when their sessions are open)."""
        return frozenset(self._prices)

    def open_specs(self, now: datetime) -> list[SymbolSpec]:
        """The symbols the walk may quote at ``now``."""
        specs = self._specs
        if self._current is not None:
            lookup = self._current
            specs = [lookup(spec.code) or spec for spec in specs]
        if self._ignore_sessions:
            return specs
        return [spec for spec in specs if spec.session.is_open(now)]

    def next_tick(self, now: datetime) -> Tick | None:
        """A tick of one symbol open at ``now``; None when every market is closed."""
        specs = self.open_specs(now)
        if not specs:
            return None
        spec = self._rng.choice(specs)
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
                ticks = [tick for _ in range(count) if (tick := walk.next_tick(now))]
                if ticks:
                    await ingestor.ingest(ticks, source=TickSource.SIMULATED)
            except Exception as error:  # the feed must outlive a failed batch
                log.warning("simulated ticks not stored", error=str(error))
        next_at += slice_seconds
        behind = loop.time() - next_at
        if behind > 0:
            next_at += behind  # skip the missed slices: no backlog to catch up
        await asyncio.sleep(next_at - loop.time())
