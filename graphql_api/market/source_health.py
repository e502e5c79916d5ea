"""Is market data flowing? Per tick source: ticks stored, ticks lost to failed writes,
and how long ago the source last had ticks stored.

The tick ingestor keeps these as plain counters (the ``/metrics`` endpoint reads
them when scraped). A source's age is only meaningful while it is *expected* to
run: the simulated feed declares itself when it starts, and an outside feed
calling ``ingestTicks`` is expected when ``EXTERNAL_FEED_EXPECTED`` says so (a
one-off ``ingestTicks`` call must not make a source look "down" forever after).
The age counts from that moment until the first tick, so a source that never
delivers is seen too. The sources are a fixed set, so each is one time series per
process whatever the traffic.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from graphql_api.platform.latency import LatencyHistogram


class TickSource(enum.StrEnum):
    SIMULATED = "simulated"  # the built-in random walk (MARKET_FEED=simulated)
    API = "api"  # external feeds calling ingestTicks


@dataclass(slots=True)
class SourceHealth:
    stored: int = 0
    failed: int = 0
    # time.monotonic() of the last stored tick / of the source's start; None: unknown.
    last_stored: float | None = None
    expected_since: float | None = None

    def age(self, now: float) -> float | None:
        """Seconds since the source's last stored tick (since it was expected, if it has
        not stored one yet); None while it is not expected here."""
        if self.expected_since is None:
            return None
        since = self.expected_since
        if self.last_stored is not None:
            since = max(since, self.last_stored)
        return max(0.0, now - since)


@dataclass(slots=True)
class MarketDataHealth:
    sources: dict[TickSource, SourceHealth] = field(
        default_factory=lambda: {source: SourceHealth() for source in TickSource}
    )
    # One atomic store write of a group of calls: how long it took, how many failed.
    batch_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)
    failed_batches: int = 0

    def expect(self, source: TickSource) -> None:
        """``source`` runs from now on: its age counts even before its first tick."""
        self.sources[source].expected_since = time.monotonic()

    def stored(self, source: TickSource, ticks: int, now: float) -> None:
        health = self.sources[source]
        health.stored += ticks
        if ticks:
            health.last_stored = now

    def failed(self, source: TickSource, ticks: int) -> None:
        self.sources[source].failed += ticks
