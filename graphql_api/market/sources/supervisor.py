"""Keep one market-data source running: reconnect with exponential backoff, stop
hammering a dead upstream with a circuit breaker, and say how it is doing.

A run that stored ticks counts as a success (the backoff and the breaker reset);
a run that failed before storing any counts as a failure. After
``failure_threshold`` failures in a row the breaker opens and the source pauses
for ``reset_timeout`` before one trial run. A :class:`SourceConfigError` is never
retried (a bad file stays bad): the source is reported ``failed`` and stays expected
(its age grows, so the data-source alert fires). A source that returns has ended:
it is no longer expected, and the supervisor returns too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import SourceState
from graphql_api.market.sources.base import MarketDataSource, SourceConfigError
from graphql_api.platform.resilience import CircuitBreaker

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class Backoff:
    """Exponential delays with full jitter: ``initial``, doubling, capped at ``maximum``.

    Jitter spreads the reconnects of many processes (or many sources) after a shared
    outage, so they do not arrive at the upstream together.
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: bool = True
    _attempt: int = 0
    _random: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self._attempt)
        self._attempt += 1
        return self._random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling

    def reset(self) -> None:
        self._attempt = 0


async def supervise(
    source: MarketDataSource,
    ingestor: TickIngestor,
    *,
    breaker: CircuitBreaker,
    backoff: Backoff,
    sleep: Sleep = asyncio.sleep,
) -> SourceState:
    """Run ``source`` until it ends or cannot run (the state it ended in); cancel to stop."""
    health = ingestor.health.of(source.name)
    ingestor.health.expect(source.name)
    while True:
        if not breaker.allow():
            health.state = SourceState.CIRCUIT_OPEN
            await sleep(max(breaker.retry_after, 0.01))
            continue
        health.state = SourceState.RUNNING
        stored_before = health.stored
        try:
            await source.run(ingestor)
        except SourceConfigError as error:
            health.state, health.last_error = SourceState.FAILED, str(error)
            log.error("market-data source cannot run", source=source.name, error=str(error))
            return SourceState.FAILED
        except Exception as error:
            health.last_error = f"{type(error).__name__}: {error}"
            health.restarts += 1
            if health.stored > stored_before:
                breaker.record_success()
                backoff.reset()
            else:
                breaker.record_failure()
            delay = backoff.next_delay()
            health.state = SourceState.RECONNECTING
            log.warning(
                "market-data source failed; reconnecting",
                source=source.name,
                error=health.last_error,
                delay_seconds=round(delay, 3),
            )
            await sleep(delay)
            continue
        breaker.record_success()
        health.state = SourceState.ENDED
        # No more ticks are due from it: its silence must not page anyone
        # (the MarketDataSourceDown alert reads the last-tick age of expected sources).
        health.expected_since = None
        log.info("market-data source ended", source=source.name)
        return SourceState.ENDED
