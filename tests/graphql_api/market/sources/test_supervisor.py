"""The supervisor: exponential backoff between restarts, a breaker that pauses a source
failing in a row, a reset once a run stored ticks, and the state it reports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import SourceState, TickSource
from graphql_api.market.sources import Backoff, supervise
from graphql_api.platform.resilience import CircuitBreaker
from storage.timeseries import Tick
from tests.graphql_api.market.sources.conftest import FakeClock

D = Decimal


class Flaky:
    """Fails with a dropped connection on the runs listed, stores one tick on the
    others; ends after ``runs`` runs."""

    def __init__(self, failing: set[int], runs: int, *, store_before_failing: bool = False):
        self.failing = failing
        self.runs = runs
        self.store_before_failing = store_before_failing
        self.run_count = 0

    @property
    def name(self) -> TickSource:
        return TickSource.BINANCE

    def symbols(self) -> frozenset[str]:
        return frozenset({"BTCUSDT"})

    async def run(self, ingestor: TickIngestor) -> None:
        self.run_count += 1
        price = D("95000.00")
        if self.run_count not in self.failing or self.store_before_failing:
            tick = Tick("BTCUSDT", datetime.now(UTC), price, price, price, D(1))
            await ingestor.ingest([tick], source=self.name)
        if self.run_count in self.failing:
            raise ConnectionError("connection reset by peer")
        if self.run_count < self.runs:
            raise ConnectionError("stream closed")


async def test_failures_back_off_exponentially_and_open_the_breaker(
    ingestor: TickIngestor, clock: FakeClock
) -> None:
    # given a source whose first five runs fail before any tick
    source = Flaky(failing={1, 2, 3, 4, 5}, runs=6)
    breaker = CircuitBreaker(
        "source-binance", failure_threshold=3, reset_timeout=10, clock=clock.monotonic
    )
    backoff = Backoff(initial=1, maximum=4, jitter=False)
    # when it is supervised
    state = await supervise(source, ingestor, breaker=breaker, backoff=backoff, sleep=clock.sleep)
    # then the waits double up to the cap, the breaker opened after three failures in a row
    # (a pause until its trial run), and the source ran until it ended
    assert state is SourceState.ENDED
    assert source.run_count == 6
    backoffs = [1, 2, 4, 4, 4]
    assert clock.sleeps[:3] == backoffs[:3]
    assert breaker.opened >= 1
    assert sum(clock.sleeps) >= sum(backoffs) + 10 - 4  # at least one breaker pause
    health = ingestor.health.of(TickSource.BINANCE)
    assert health.restarts == 5
    assert health.last_error == "ConnectionError: connection reset by peer"
    assert health.state is SourceState.ENDED
    assert health.stored == 1


async def test_a_run_that_stored_ticks_resets_the_backoff(
    ingestor: TickIngestor, clock: FakeClock
) -> None:
    # given a source that delivers, then drops, every time
    source = Flaky(failing={1, 2, 3, 4}, runs=5, store_before_failing=True)
    breaker = CircuitBreaker("source-binance", failure_threshold=2, clock=clock.monotonic)
    backoff = Backoff(initial=1, maximum=60, jitter=False)
    await supervise(source, ingestor, breaker=breaker, backoff=backoff, sleep=clock.sleep)
    # then it reconnects after the first delay each time, and the breaker never opens
    assert clock.sleeps == [1, 1, 1, 1]
    assert breaker.opened == 0


async def test_a_supervised_source_reports_running_while_it_runs(
    ingestor: TickIngestor,
) -> None:
    started = asyncio.Event()

    class Endless:
        name = TickSource.REPLAY

        def symbols(self) -> frozenset[str]:
            return frozenset()

        async def run(self, ingestor: TickIngestor) -> None:
            started.set()
            await asyncio.Event().wait()

    breaker = CircuitBreaker("source-replay")
    task = asyncio.create_task(supervise(Endless(), ingestor, breaker=breaker, backoff=Backoff()))
    await asyncio.wait_for(started.wait(), 5)
    health = ingestor.health.of(TickSource.REPLAY)
    assert health.state is SourceState.RUNNING
    assert health.age(health.expected_since or 0) == pytest.approx(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_jittered_delays_stay_between_half_and_the_full_step() -> None:
    backoff = Backoff(initial=1, maximum=8)
    for ceiling in (1, 2, 4, 8, 8):
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1
