"""The indicators one bar at a time, O(1) per bar, for live strategies.

Each class returns what the vectorised function in
:mod:`graphql_api.market.indicators.vectorised` would return at the same index
(``None`` where that has NaN), to within floating-point rounding: a strategy
warmed up on history and then fed live bars sees the same values a backtest
does.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

__all__ = [
    "BollingerPoint",
    "IncrementalATR",
    "IncrementalBollinger",
    "IncrementalEMA",
    "IncrementalMACD",
    "IncrementalRSI",
    "IncrementalSMA",
    "MacdPoint",
]


class MacdPoint(NamedTuple):
    macd: float
    signal: float | None
    histogram: float | None


class BollingerPoint(NamedTuple):
    upper: float
    middle: float
    lower: float


class IncrementalSMA:
    """Simple moving average.

    The running sum is rebuilt exactly (``math.fsum``) once per ``period``
    bars, so rounding drift cannot accumulate over months of live bars while
    the cost stays O(1) per bar on average.
    """

    __slots__ = ("_period", "_since_resync", "_sum", "_window")

    def __init__(self, period: int) -> None:
        _check_period(period, "period")
        self._period = period
        self._window: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._since_resync = 0

    def update(self, value: float) -> float | None:
        if len(self._window) == self._period:
            self._sum -= self._window[0]
        self._window.append(value)
        self._sum += value
        self._since_resync += 1
        if self._since_resync >= self._period:
            self._sum = math.fsum(self._window)
            self._since_resync = 0
        if len(self._window) < self._period:
            return None
        return self._sum / self._period


class _SeededSmoothing:
    """``y += alpha * (x - y)`` seeded with the mean of the first ``period`` inputs."""

    __slots__ = ("_alpha", "_period", "_value", "_warmup")

    def __init__(self, period: int, alpha: float) -> None:
        self._period = period
        self._alpha = alpha
        self._warmup: list[float] = []
        self._value: float | None = None

    def update(self, value: float) -> float | None:
        if self._value is not None:
            self._value += self._alpha * (value - self._value)
            return self._value
        self._warmup.append(value)
        if len(self._warmup) < self._period:
            return None
        self._value = math.fsum(self._warmup) / self._period
        self._warmup.clear()
        return self._value


class IncrementalEMA:
    """Exponential moving average, seeded with the SMA of the first ``period`` values."""

    __slots__ = ("_smoothing",)

    def __init__(self, period: int) -> None:
        _check_period(period, "period")
        self._smoothing = _SeededSmoothing(period, 2.0 / (period + 1))

    def update(self, value: float) -> float | None:
        return self._smoothing.update(value)


class IncrementalRSI:
    """Wilder's RSI; 50 while there has been no movement at all (see ``vectorised.rsi``)."""

    __slots__ = ("_gain", "_loss", "_previous")

    def __init__(self, period: int = 14) -> None:
        _check_period(period, "period")
        self._previous: float | None = None
        self._gain = _SeededSmoothing(period, 1.0 / period)
        self._loss = _SeededSmoothing(period, 1.0 / period)

    def update(self, value: float) -> float | None:
        previous, self._previous = self._previous, value
        if previous is None:
            return None
        change = value - previous
        gain = self._gain.update(max(change, 0.0))
        loss = self._loss.update(max(-change, 0.0))
        if gain is None or loss is None:
            return None
        total = gain + loss
        return 100.0 * (gain / total) if total > 0.0 else 50.0


class IncrementalMACD:
    """MACD with TA-Lib's seeding: both EMAs start at bar ``slow - 1``.

    Until then the last ``slow`` closes are kept, so both seeds (the SMA of
    the last ``fast`` and of the last ``slow`` closes) can be taken at once.
    """

    __slots__ = (
        "_fast",
        "_fast_k",
        "_fast_period",
        "_recent",
        "_signal",
        "_slow",
        "_slow_k",
        "_slow_period",
    )

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_period(fast, "fast")
        _check_period(slow, "slow")
        _check_period(signal, "signal")
        if fast >= slow:
            raise ValueError(f"fast ({fast}) must be less than slow ({slow})")
        self._fast_period = fast
        self._slow_period = slow
        self._fast_k = 2.0 / (fast + 1)
        self._slow_k = 2.0 / (slow + 1)
        self._recent: deque[float] = deque(maxlen=slow)
        self._fast: float | None = None
        self._slow: float | None = None
        self._signal = IncrementalEMA(signal)

    def update(self, value: float) -> MacdPoint | None:
        if self._fast is None or self._slow is None:
            self._recent.append(value)
            if len(self._recent) < self._slow_period:
                return None
            closes = list(self._recent)
            self._fast = math.fsum(closes[-self._fast_period :]) / self._fast_period
            self._slow = math.fsum(closes) / self._slow_period
            self._recent.clear()
        else:
            self._fast += self._fast_k * (value - self._fast)
            self._slow += self._slow_k * (value - self._slow)
        line = self._fast - self._slow
        signal = self._signal.update(line)
        return MacdPoint(line, signal, None if signal is None else line - signal)


class IncrementalBollinger:
    """Bollinger Bands (SMA middle, population standard deviation).

    The window's mean and sum of squared deviations slide in O(1); like
    :class:`IncrementalSMA` they are recomputed exactly once per ``period``
    bars to stop drift.
    """

    __slots__ = ("_m2", "_mean", "_period", "_since_resync", "_stddev", "_window")

    def __init__(self, period: int = 20, stddev: float = 2.0) -> None:
        _check_period(period, "period")
        if not (math.isfinite(stddev) and stddev >= 0.0):
            raise ValueError(f"stddev must be a finite number >= 0, got {stddev!r}")
        self._period = period
        self._stddev = stddev
        self._window: deque[float] = deque(maxlen=period)
        self._mean = 0.0
        self._m2 = 0.0
        self._since_resync = 0

    def update(self, value: float) -> BollingerPoint | None:
        if len(self._window) < self._period:
            self._window.append(value)
            if len(self._window) < self._period:
                return None
            self._resync()
        else:
            dropped = self._window[0]
            self._window.append(value)
            self._since_resync += 1
            if self._since_resync >= self._period:
                self._resync()
            else:
                # Welford's update for replacing one observation of a fixed-size sample.
                mean = self._mean + (value - dropped) / self._period
                self._m2 += (value - dropped) * (value - mean + dropped - self._mean)
                self._mean = mean
        width = self._stddev * math.sqrt(max(self._m2, 0.0) / self._period)
        return BollingerPoint(self._mean + width, self._mean, self._mean - width)

    def _resync(self) -> None:
        self._mean = math.fsum(self._window) / self._period
        self._m2 = math.fsum((x - self._mean) ** 2 for x in self._window)
        self._since_resync = 0


class IncrementalATR:
    """Wilder's ATR; the first bar only provides the previous close (as in TA-Lib)."""

    __slots__ = ("_previous_close", "_smoothing")

    def __init__(self, period: int = 14) -> None:
        _check_period(period, "period")
        self._previous_close: float | None = None
        self._smoothing = _SeededSmoothing(period, 1.0 / period)

    def update(self, high: float, low: float, close: float) -> float | None:
        previous, self._previous_close = self._previous_close, close
        if previous is None:
            return None
        true_range = max(high - low, max(abs(high - previous), abs(low - previous)))
        return self._smoothing.update(true_range)


def _check_period(period: int, name: str) -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {period!r}")
