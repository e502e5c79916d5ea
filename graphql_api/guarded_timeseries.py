"""A circuit breaker and a deadline around a remote time-series store (TDengine).

Reads (ticks, quotes, klines) fail fast with ``SERVICE_UNAVAILABLE`` while
TDengine is down, instead of every request waiting out the connector's own
timeouts on a dead server; the breaker lets one trial through after its reset
time and closes on success. Writes pass straight through: the TDengine store
already buffers them through an outage (``TDENGINE_BUFFER_ROWS``), and the tick
ingestor reports its own failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from graphql_api.resilience import CircuitBreaker, ServiceUnavailableError, with_timeout
from storage.timeseries import Bar, KlineInterval, Tick, TimeSeriesStore

T = TypeVar("T")
SERVICE = "tdengine"


class GuardedTimeSeriesStore:
    """Parameters:
    store: the store to guard.
    breaker: opened by failed or timed-out reads.
    timeout: deadline of one read, in seconds.
    """

    def __init__(self, store: TimeSeriesStore, breaker: CircuitBreaker, *, timeout: float) -> None:
        self.store = store
        self.breaker = breaker
        self._timeout = timeout

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        await self.store.write_ticks(ticks)

    async def ticks(
        self, symbol: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Tick]:
        return await self._read(lambda: self.store.ticks(symbol, start, end, limit))

    async def latest_ticks(self, symbols: Sequence[str]) -> dict[str, Tick]:
        return await self._read(lambda: self.store.latest_ticks(symbols))

    async def klines(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Bar]:
        return await self._read(lambda: self.store.klines(symbol, interval, start, end, limit))

    async def close(self) -> None:
        await self.store.close()

    async def _read(self, read: Callable[[], Awaitable[T]]) -> T:
        async def bounded() -> T:
            return await with_timeout(read(), self._timeout, service=SERVICE)

        try:
            return await self.breaker.call(bounded, is_failure=is_outage)
        except ServiceUnavailableError:
            raise
        except Exception as error:
            if is_outage(error):
                raise ServiceUnavailableError(SERVICE, f"read failed: {error}") from error
            raise  # the server answered, with a refusal


def is_outage(error: BaseException) -> bool:
    """A timeout, a network failure, or an error TDengine itself calls transient."""
    if isinstance(error, (ServiceUnavailableError, OSError)):
        return True
    return bool(getattr(error, "transient", False))
