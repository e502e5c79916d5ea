"""Technical indicators over whole price series, following TA-Lib's conventions.

Every output is as long as its input, with NaN for the warm-up bars, so that
index ``i`` of an indicator always belongs to bar ``i`` (the GraphQL layer maps
NaN to null). Seeds are computed with :func:`math.fsum` so that the
incremental versions in :mod:`graphql_api.market.indicators.incremental` start from
bit-identical values.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from graphql_api.market.indicators._kernels import (
    FloatArray,
    exponential_smoothing,
    rolling_mean,
    rolling_population_std,
)

__all__ = [
    "BollingerResult",
    "FloatArray",
    "MacdResult",
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rsi",
    "sma",
]


class MacdResult(NamedTuple):
    macd: FloatArray
    signal: FloatArray
    histogram: FloatArray


class BollingerResult(NamedTuple):
    upper: FloatArray
    middle: FloatArray
    lower: FloatArray


def sma(close: npt.ArrayLike, period: int) -> FloatArray:
    """Simple moving average; the first value is at index ``period - 1``."""
    values = _series(close, "close")
    _check_period(period, "period")
    out = _nans(values.size)
    if values.size >= period:
        out[period - 1 :] = rolling_mean(values, period)
    return out


def ema(close: npt.ArrayLike, period: int) -> FloatArray:
    """Exponential moving average, ``k = 2 / (period + 1)``.

    Seeded, as TA-Lib does, with the SMA of the first ``period`` values, so the
    first value is at index ``period - 1`` and no value depends on an
    arbitrary starting point.
    """
    values = _series(close, "close")
    _check_period(period, "period")
    return _ema_seeded_at(values, period, period - 1)


def macd(close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MacdResult:
    """MACD line, its signal line and the histogram, as TA-Lib computes them.

    TA-Lib starts *both* EMAs at the bar where the slow one can start
    (``slow - 1``): the fast EMA is seeded there with the SMA of the last
    ``fast`` closes, not at ``fast - 1``. The MACD line is therefore not
    ``ema(close, fast) - ema(close, slow)`` during the first bars; it is what
    TA-Lib (and most charting packages built on it) show.

    The MACD line is reported from ``slow - 1``; the signal line (an EMA of the
    MACD line, seeded with the SMA of its first ``signal`` values) and the
    histogram from ``slow + signal - 2``. TA-Lib blanks the MACD line until the
    signal exists too; we keep the values it has already computed.
    """
    values = _series(close, "close")
    _check_period(fast, "fast")
    _check_period(slow, "slow")
    _check_period(signal, "signal")
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be less than slow ({slow})")
    start = slow - 1
    line = _ema_seeded_at(values, fast, start) - _ema_seeded_at(values, slow, start)
    signal_line = _nans(values.size)
    if values.size > start:
        signal_line[start:] = _ema_seeded_at(line[start:], signal, signal - 1)
    return MacdResult(line, signal_line, line - signal_line)


def rsi(close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's relative strength index; the first value is at index ``period``.

    Average gain and loss are seeded with the simple means of the first
    ``period`` changes, then Wilder-smoothed (``alpha = 1 / period``).

    Where there was no movement at all (average gain and loss both zero) RSI
    is 50. TA-Lib returns 0 there, which would read as "deeply oversold" and
    trigger mean-reversion buys on a halted market.
    """
    values = _series(close, "close")
    _check_period(period, "period")
    out = _nans(values.size)
    if values.size <= period:
        return out
    changes = np.diff(values)
    gains = np.maximum(changes, 0.0)
    losses = np.maximum(-changes, 0.0)
    average_gain = _wilder(gains, period)
    average_loss = _wilder(losses, period)
    out[period:] = _rsi_from_averages(average_gain, average_loss)
    return out


def _rsi_from_averages(average_gain: FloatArray, average_loss: FloatArray) -> FloatArray:
    """RSI as ``100 * gain / (gain + loss)``: equal to the textbook
    ``100 - 100 / (1 + RS)`` but defined when the average loss is zero."""
    # The share is taken before scaling (as TA-Lib does) so a loss-free window
    # gives exactly 100: gain / gain == 1, while (100 * gain) / gain can round past it.
    total = average_gain + average_loss
    share = np.divide(average_gain, total, out=np.full_like(total, 0.5), where=total > 0.0)
    result: FloatArray = 100.0 * share
    return result


def bollinger(close: npt.ArrayLike, period: int = 20, stddev: float = 2.0) -> BollingerResult:
    """Bollinger Bands: SMA middle band, ``stddev`` population standard deviations either side.

    The population (not sample) deviation is what Bollinger specified and what
    TA-Lib uses.
    """
    values = _series(close, "close")
    _check_period(period, "period")
    if not (math.isfinite(stddev) and stddev >= 0.0):
        raise ValueError(f"stddev must be a finite number >= 0, got {stddev!r}")
    middle = _nans(values.size)
    width = _nans(values.size)
    if values.size >= period:
        means = rolling_mean(values, period)
        middle[period - 1 :] = means
        width[period - 1 :] = stddev * rolling_population_std(values, period, means)
    return BollingerResult(middle + width, middle, middle - width)


def atr(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14
) -> FloatArray:
    """Wilder's average true range; the first value is at index ``period``.

    As in TA-Lib, bar 0 has no previous close, so its true range is not used:
    the seed is the mean of the true ranges of bars ``1..period``.
    """
    highs = _series(high, "high")
    lows = _series(low, "low")
    closes = _series(close, "close")
    if not highs.size == lows.size == closes.size:
        raise ValueError("high, low and close must have the same length")
    _check_period(period, "period")
    out = _nans(closes.size)
    if closes.size <= period:
        return out
    previous = closes[:-1]
    true_range = np.maximum(
        highs[1:] - lows[1:],
        np.maximum(np.abs(highs[1:] - previous), np.abs(lows[1:] - previous)),
    )
    out[period:] = _wilder(true_range, period)
    return out


def _wilder(values: FloatArray, period: int) -> FloatArray:
    """Wilder smoothing of ``values``, seeded with the mean of the first ``period``."""
    seed = math.fsum(values[:period].tolist()) / period
    out = np.empty(values.size - period + 1, dtype=np.float64)
    out[0] = seed
    out[1:] = exponential_smoothing(values[period:], seed, 1.0 / period)
    return out


def _ema_seeded_at(values: FloatArray, period: int, seed_index: int) -> FloatArray:
    """EMA whose first value, at ``seed_index``, is the SMA of the values ending there."""
    out = _nans(values.size)
    if values.size <= seed_index:
        return out
    seed = math.fsum(values[seed_index - period + 1 : seed_index + 1].tolist()) / period
    out[seed_index] = seed
    alpha = 2.0 / (period + 1)
    out[seed_index + 1 :] = exponential_smoothing(values[seed_index + 1 :], seed, alpha)
    return out


def _series(values: npt.ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must contain only finite numbers")
    return array


def _check_period(period: int, name: str) -> None:
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {period!r}")


def _nans(size: int) -> FloatArray:
    return np.full(size, np.nan, dtype=np.float64)
