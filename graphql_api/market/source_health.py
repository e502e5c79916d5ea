"""Is market data flowing? Per tick source: ticks stored, ticks lost to failed writes,
and how long ago the source last had ticks stored.

The tick ingestor keeps these as plain counters (the ``/metrics`` endpoint reads
them when scraped). A source's age is only meaningful while it is *expected* to
run: the simulated feed declares itself when it starts, and an outside feed
calling ``ingestTicks`` is expected when ``EXTERNAL_FEED_EXPECTED`` says so (a
one-off ``ingestTicks`` call must not make a source look "down" forever after).
The age counts from that moment until the first tick, so a source that never
delivers is seen too. The sources are a fixed set, so each is one time series per
process whatever the traffic. Supervised sources (``MARKET_FEED``) also report
their state, restarts and last fault here, for ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from graphql_api.platform.latency import LatencyHistogram


class TickSource(enum.StrEnum):
    SIMULATED = "simulated"  # the built-in random walk (MARKET_FEED=simulated)
    API = "api"  # external feeds calling ingestTicks
    REPLAY = "replay"  # recorded ticks played back (MARKET_FEED=replay)
    BINANCE = "binance"  # Binance's public spot streams (MARKET_FEED=binance)


class SourceState(enum.StrEnum):
    """Where a supervised market-data source is (graphql_api/market/sources/supervisor.py)."""

    RUNNING = "running"
    RECONNECTING = "reconnecting"  # failed; waiting out its backoff
    CIRCUIT_OPEN = "circuit_open"  # failed too often in a row; paused
    ENDED = "ended"  # delivered everything it had (a replay without REPLAY_LOOP)
    FAILED = "failed"  # cannot run as configured (a bad replay file); not retried


@dataclass(slots=True)
class SourceHealth:
    stored: int = 0
    failed: int = 0
    # time.monotonic() of the last stored tick / of the source's start; None: unknown.
    last_stored: float | None = None
    expected_since: float | None = None
    # Only for sources run by a supervisor: its state, restarts and last fault.
    state: SourceState | None = None
    restarts: int = 0
    last_error: str | None = None

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
    # The simulated feed and ingestTicks always have a series; the other sources
    # from when they are expected in this process.
    sources: dict[TickSource, SourceHealth] = field(
        default_factory=lambda: {
            source: SourceHealth() for source in (TickSource.SIMULATED, TickSource.API)
        }
    )
    # One atomic store write of a group of calls: how long it took, how many failed.
    batch_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)
    failed_batches: int = 0

    def expect(self, source: TickSource) -> None:
        """``source`` runs from now on: its age counts even before its first tick."""
        self.of(source).expected_since = time.monotonic()

    def of(self, source: TickSource) -> SourceHealth:
        """``source``'s counters, created on first use."""
        health = self.sources.get(source)
        if health is None:
            health = self.sources[source] = SourceHealth()
        return health

    def stored(self, source: TickSource, ticks: int, now: float) -> None:
        health = self.of(source)
        health.stored += ticks
        if ticks:
            health.last_stored = now

    def failed(self, source: TickSource, ticks: int) -> None:
        self.of(source).failed += ticks
