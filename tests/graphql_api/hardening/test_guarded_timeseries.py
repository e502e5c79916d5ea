"""The breaker and deadline around a remote time-series store (TDengine in production).

The store below is a stand-in for an unreachable or slow server: what is under
test is the guard's own logic (count outages, refuse fast, try again, recover).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from graphql_api.hardening.guarded_timeseries import GuardedTimeSeriesStore
from graphql_api.platform.resilience import BreakerState, CircuitBreaker, ServiceUnavailableError
from storage.timeseries import AmountPlaces, Bar, BarText, KlineInterval, Tick
from storage.timeseries.base import BatchOutcome, TickBatch


class FlakyStore:
    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.delay = 0.0
        self.reads = 0

    async def write_ticks(self, ticks: Sequence[Tick]) -> None: ...

    async def write_batches(self, batches: Sequence[TickBatch]) -> list[BatchOutcome]:
        return [BatchOutcome.STORED] * len(batches)

    async def ticks(
        self, symbol: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Tick]:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        return []

    async def latest_ticks(self, symbols: Sequence[str]) -> dict[str, Tick]:
        return {}

    async def klines(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Bar]:
        return []

    async def kline_texts(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        places: AmountPlaces,
    ) -> list[BarText]:
        return []

    async def close(self) -> None: ...


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def state_of(guarded: GuardedTimeSeriesStore) -> BreakerState:
    return guarded.breaker.state  # a call, so mypy does not narrow it between asserts


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def guarded(store: FlakyStore, clock: Clock) -> GuardedTimeSeriesStore:
    breaker = CircuitBreaker("tdengine", failure_threshold=2, reset_timeout=5, clock=clock)
    return GuardedTimeSeriesStore(store, breaker, timeout=0.2)


async def test_an_outage_opens_the_circuit_at_once_and_recovery_closes_it(
    guarded: GuardedTimeSeriesStore, store: FlakyStore, clock: Clock
) -> None:
    # given a server that refuses connections
    store.failure = ConnectionRefusedError("connection refused")
    with pytest.raises(ServiceUnavailableError) as failed:
        await guarded.ticks("BTCUSDT", None, None, 10)
    assert failed.value.service == "tdengine"
    # then one failed read is proof enough: the circuit opens at once…
    assert state_of(guarded) is BreakerState.OPEN
    # …and further reads are refused without touching the server
    for _ in range(3):
        with pytest.raises(ServiceUnavailableError):
            await guarded.ticks("BTCUSDT", None, None, 10)
    assert store.reads == 1
    # when it is back and the reset time has passed, one trial read closes the circuit
    store.failure = None
    clock.now += 5
    assert await guarded.ticks("BTCUSDT", None, None, 10) == []
    assert state_of(guarded) is BreakerState.CLOSED


async def test_a_slow_read_is_cut_at_the_deadline(
    guarded: GuardedTimeSeriesStore, store: FlakyStore
) -> None:
    store.delay = 5
    with pytest.raises(ServiceUnavailableError, match="no answer within"):
        await guarded.ticks("BTCUSDT", None, None, 10)


async def test_a_refusal_by_a_live_server_is_not_an_outage(
    guarded: GuardedTimeSeriesStore, store: FlakyStore
) -> None:
    store.failure = ValueError("bad range")
    for _ in range(3):
        with pytest.raises(ValueError, match="bad range"):
            await guarded.ticks("BTCUSDT", None, None, 10)
    assert state_of(guarded) is BreakerState.CLOSED
