"""Price bars as columns: float arrays for the vectorised maths, exact Decimals for fills."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from graphql_api.market.indicators import FloatArray

__all__ = ["Bars"]

TimeArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """OHLC bars in time order.

    ``times`` is ``datetime64[us]``, read as UTC. ``exact_open`` and
    ``exact_close``, when given, are the prices fills use; otherwise a fill
    price is the shortest decimal that round-trips the float (``repr``),
    which is the original price for any price of up to 15 significant digits.
    Build with :meth:`from_arrays` or :meth:`from_decimals`.
    """

    times: TimeArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    exact_open: tuple[Decimal, ...] | None = None
    exact_close: tuple[Decimal, ...] | None = None

    def __post_init__(self) -> None:
        count = self.times.shape[0]
        if self.times.dtype != np.dtype("datetime64[us]"):
            raise ValueError("times must be datetime64[us]; build Bars with from_arrays")
        for name in ("open", "high", "low", "close"):
            column: FloatArray = getattr(self, name)
            if column.dtype != np.float64 or column.shape != (count,):
                raise ValueError(f"{name} must be a float64 array as long as times")
            if not (np.isfinite(column).all() and (column > 0.0).all()):
                raise ValueError(f"{name} prices must be finite and positive")
        for name in ("exact_open", "exact_close"):
            exact: tuple[Decimal, ...] | None = getattr(self, name)
            if exact is not None and len(exact) != count:
                raise ValueError(f"{name} must be as long as times")
        if count > 1 and not (np.diff(self.times) > np.timedelta64(0, "us")).all():
            raise ValueError("times must be strictly increasing")

    @classmethod
    def from_arrays(
        cls,
        times: Sequence[datetime] | TimeArray,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
    ) -> Bars:
        """Bars from float-like prices; ``times`` aware datetimes or ``datetime64`` (UTC)."""
        return cls(
            _as_utc_datetime64(times),
            np.asarray(open, dtype=np.float64),
            np.asarray(high, dtype=np.float64),
            np.asarray(low, dtype=np.float64),
            np.asarray(close, dtype=np.float64),
        )

    @classmethod
    def from_decimals(
        cls,
        times: Sequence[datetime] | TimeArray,
        open: Sequence[Decimal],
        high: Sequence[Decimal],
        low: Sequence[Decimal],
        close: Sequence[Decimal],
    ) -> Bars:
        """Bars from stored (Decimal) prices; fills then use those prices exactly."""
        return cls(
            _as_utc_datetime64(times),
            np.array([float(p) for p in open], dtype=np.float64),
            np.array([float(p) for p in high], dtype=np.float64),
            np.array([float(p) for p in low], dtype=np.float64),
            np.array([float(p) for p in close], dtype=np.float64),
            exact_open=tuple(open),
            exact_close=tuple(close),
        )

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def open_price(self, index: int) -> Decimal:
        if self.exact_open is not None:
            return self.exact_open[index]
        return Decimal(repr(float(self.open[index])))

    def close_price(self, index: int) -> Decimal:
        if self.exact_close is not None:
            return self.exact_close[index]
        return Decimal(repr(float(self.close[index])))

    def time_at(self, index: int) -> datetime:
        moment: datetime = self.times[index].item()
        return moment.replace(tzinfo=UTC)


def _as_utc_datetime64(times: Sequence[datetime] | TimeArray) -> TimeArray:
    if isinstance(times, np.ndarray):
        if not np.issubdtype(times.dtype, np.datetime64):
            raise ValueError("times must be datetimes")
        return times.astype("datetime64[us]")
    naive_utc = []
    for moment in times:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"times must be timezone-aware, got {moment!r}")
        naive_utc.append(moment.astimezone(UTC).replace(tzinfo=None))
    return np.array(naive_utc, dtype="datetime64[us]")
