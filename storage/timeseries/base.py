"""The time-series contract shared by every backend.

Ticks are stored per symbol; klines for intraday intervals are aggregated from
stored ticks by the backend itself, so every backend must give exactly the same
bars for the same ticks. Buckets are aligned to the Unix epoch in UTC (a 5m bar
starts at a multiple of 300 s since 1970-01-01T00:00:00Z) and are labelled by
their start time.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple, Protocol

from storage.decimal_text import plain_text_at_scale


class KlineInterval(enum.Enum):
    """Bar widths: intraday ones are aggregated from ticks, ``DAY_1`` is stored daily history."""

    MINUTE_1 = "1m"
    MINUTE_5 = "5m"
    MINUTE_15 = "15m"
    HOUR_1 = "1h"
    DAY_1 = "1d"

    @property
    def duration(self) -> timedelta:
        return _DURATIONS[self]

    @property
    def seconds(self) -> int:
        return int(self.duration.total_seconds())

    @property
    def is_intraday(self) -> bool:
        return self is not KlineInterval.DAY_1


_DURATIONS = {
    KlineInterval.MINUTE_1: timedelta(minutes=1),
    KlineInterval.MINUTE_5: timedelta(minutes=5),
    KlineInterval.MINUTE_15: timedelta(minutes=15),
    KlineInterval.HOUR_1: timedelta(hours=1),
    KlineInterval.DAY_1: timedelta(days=1),
}


@dataclass(frozen=True, slots=True)
class Tick:
    """One market data update: last trade price and size plus the top of book.

    ``volume`` is the quantity traded in this tick (not a running total), so a
    bar's volume is the sum of its ticks' volumes.
    """

    symbol: str
    time: datetime
    last: Decimal
    bid: Decimal
    ask: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar labelled by its (UTC, epoch-aligned) start time."""

    symbol: str
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int


class AmountPlaces(NamedTuple):
    """The decimals a symbol's prices and quantities are written with (its tick and
    lot sizes'); see ``storage.decimal_text.plain_text_at_scale``."""

    price: int
    quantity: int


class BarText(NamedTuple):
    """A :class:`Bar` of a known symbol written as the API writes it: its start time
    in ISO 8601 (``datetime.isoformat``) and its amounts in plain decimal notation
    at the symbol's :class:`AmountPlaces` (the same values as the bar's). For a
    reader that writes bars out as text, so a 10,000-bar answer decodes no numerics
    or timestamps on the way and formats none of them one by one."""

    time: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    trade_count: int

    @classmethod
    def of(cls, bar: Bar, places: AmountPlaces) -> BarText:
        price, quantity = places
        return cls(
            bar.time.isoformat(),
            plain_text_at_scale(format(bar.open, "f"), price),
            plain_text_at_scale(format(bar.high, "f"), price),
            plain_text_at_scale(format(bar.low, "f"), price),
            plain_text_at_scale(format(bar.close, "f"), price),
            plain_text_at_scale(format(bar.volume, "f"), quantity),
            bar.trade_count,
        )


class TimeSeriesWriteError(Exception):
    """A batch could not be written; nothing of it was applied.

    Unless ``outcome_unknown``: the connection failed while the store was
    committing, so the batch may or may not be stored (a retry with the same
    :class:`BatchKey` finds out without storing it twice).
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True, slots=True)
class BatchKey:
    """A feed's idempotency key for one batch of ticks.

    ``owner_id`` scopes ``batch_id`` (one feed's ids never collide with another's);
    ``digest`` fingerprints the ticks, so a retry (same key, same ticks) is told
    apart from a reuse of the key for other ticks.
    """

    owner_id: int
    batch_id: str
    digest: str


@dataclass(frozen=True, slots=True)
class TickBatch:
    """The ticks of one writer's call, optionally keyed for idempotent retries."""

    ticks: Sequence[Tick]
    key: BatchKey | None = None


class BatchOutcome(enum.Enum):
    """What became of one :class:`TickBatch` in :meth:`TimeSeriesStore.write_batches`."""

    STORED = "stored"
    REPLAYED = "replayed"
    """Its key was already recorded with the same ticks: stored before, not again."""
    CONFLICT = "conflict"
    """Its key was already recorded with other ticks: nothing stored."""


# asyncpg writes datetime.min/max as -infinity/infinity, which no read returns as a time.
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def check_batch(ticks: Sequence[Tick]) -> None:
    """Refuse a batch no backend could store faithfully, before any of it is written."""
    for index, tick in enumerate(ticks):
        # One expression per tick, no generator: this runs for every tick ingested.
        if not (
            type(tick.last) is type(tick.bid) is type(tick.ask) is type(tick.volume) is Decimal
            and tick.last.is_finite()
            and tick.bid.is_finite()
            and tick.ask.is_finite()
            and tick.volume.is_finite()
        ):
            raise TimeSeriesWriteError(f"tick {index} ({tick.symbol}) has a non-finite value")
        if tick.time.tzinfo is None:
            raise TimeSeriesWriteError(f"tick {index} ({tick.symbol}) has a naive time")
        if not _FIRST_INSTANT < tick.time < _LAST_INSTANT:
            raise TimeSeriesWriteError(f"tick {index} ({tick.symbol}) is at the end of time")


class TimeSeriesStore(Protocol):
    """What the rest of the system needs from a tick store.

    Reads return ticks and bars in ascending time order. When a range would
    yield more than ``limit`` rows: with ``start`` given, the first ``limit``
    from ``start``; without it, the latest ``limit`` up to ``end``. Unknown
    symbols give empty results, never errors.
    """

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        """Persist a batch atomically (all or nothing), raising TimeSeriesWriteError."""

    async def write_batches(self, batches: Sequence[TickBatch]) -> list[BatchOutcome]:
        """Persist several writers' batches together: all of them or none (group commit).

        A keyed batch whose key is already recorded is not stored again; the
        outcomes are in ``batches`` order. Raises TimeSeriesWriteError.
        """

    async def ticks(
        self, symbol: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Tick]: ...

    async def latest_ticks(self, symbols: Sequence[str]) -> dict[str, Tick]:
        """The latest tick per symbol; symbols without ticks are absent."""

    async def klines(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Bar]:
        """Intraday bars aggregated from ticks (``interval.is_intraday`` must hold)."""

    async def kline_texts(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        places: AmountPlaces,
    ) -> list[BarText]:
        """:meth:`klines` written as text, the amounts at ``places`` (the same bars,
        the same rules)."""

    async def close(self) -> None: ...
