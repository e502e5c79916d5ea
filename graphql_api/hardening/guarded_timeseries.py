"""A circuit breaker and a deadline around a remote time-series store (TDengine).

Reads (ticks, quotes, klines) fail fast with ``SERVICE_UNAVAILABLE`` once
TDengine is known to be down, instead of every request waiting out the
connector's own timeouts on a dead server. It is known to be down when the
store is buffering writes because deliveries fail (the store's ``outage``), or
when a read fails for lack of an answer: that opens the breaker at once, and
the breaker lets one trial through after its reset time and closes on success.
Writes pass straight through: the TDengine store bounds them by its own write
deadline and buffers them through an outage (``TDENGINE_BUFFER_ROWS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from graphql_api.platform.resilience import (
    BreakerState,
    CircuitBreaker,
    ServiceUnavailableError,
    with_timeout,
)
from storage.timeseries import AmountPlaces, Bar, BarText, KlineInterval, Tick, TimeSeriesStore
from storage.timeseries.base import BatchOutcome, TickBatch

T = TypeVar("T")
SERVICE = "tdengine"


class GuardedTimeSeriesStore:
    """Parameters:
    store: the store to guard; if it has an ``outage`` attribute (a reason, or
        ``None`` while deliveries succeed), reads are refused while it is set.
    breaker: opened by a read that fails or times out.
    timeout: deadline of one read, in seconds.
    """

    def __init__(self, store: TimeSeriesStore, breaker: CircuitBreaker, *, timeout: float) -> None:
        self.store = store
        self.breaker = breaker
        self._timeout = timeout

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        await self.store.write_ticks(ticks)

    async def write_batches(self, batches: Sequence[TickBatch]) -> list[BatchOutcome]:
        return await self.store.write_batches(batches)

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

    async def kline_texts(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        places: AmountPlaces,
    ) -> list[BarText]:
        return await self._read(
            lambda: self.store.kline_texts(symbol, interval, start, end, limit, places)
        )

    async def probe(self) -> None:
        """Readiness: refused while the store is known to be down, else one round trip."""
        self._refuse_if_down()
        if self.breaker.state is BreakerState.OPEN:
            raise ServiceUnavailableError(SERVICE, "circuit open after a failed read")
        ping: Callable[[], Awaitable[None]] | None = getattr(self.store, "ping", None)
        if ping is not None:
            await self._read(ping)

    async def close(self) -> None:
        await self.store.close()

    def _refuse_if_down(self) -> None:
        outage: str | None = getattr(self.store, "outage", None)
        if outage is not None:
            raise ServiceUnavailableError(
                SERVICE, f"writes are being buffered after a failed delivery: {outage}"
            )

    async def _read(self, read: Callable[[], Awaitable[T]]) -> T:
        self._refuse_if_down()

        async def bounded() -> T:
            try:
                return await with_timeout(read(), self._timeout, service=SERVICE)
            except Exception as error:
                if is_outage(error):
                    # One unanswered read is enough: the next ones would wait as long.
                    self.breaker.trip()
                raise

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
