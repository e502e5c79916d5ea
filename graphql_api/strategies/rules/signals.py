"""Every strategy kind's signals over a whole price series at once (backtests, charts).

A signal on bar ``t`` is decided on bar ``t``'s close, from data up to and
including that bar; acting on it is the backtest's (or the broker's) job.

Rules, with "crosses" as defined in :mod:`graphql_api.strategies.rules.crossing`:

- SMA_CROSS / EMA_CROSS: buy when the fast average crosses above the slow
  one, sell when it crosses below.
- RSI_REVERSION: buy when RSI crosses back above ``lower`` (leaves the
  oversold zone), sell when it crosses back below ``upper`` (leaves the
  overbought zone). Waiting for the exit from the zone, rather than buying on
  entry into it, is the conventional way to avoid catching a falling knife.
- MACD_CROSS: buy when the MACD line crosses above its signal line, sell when
  it crosses below.
- BOLLINGER_BREAKOUT: buy when the close crosses above the upper band, sell
  when it crosses below the middle band (the breakout has failed or run out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from graphql_api.market.indicators import FloatArray, bollinger, ema, macd, rsi, sma
from graphql_api.strategies.rules.crossing import Signals, crossings
from graphql_api.strategies.rules.parameters import Number, require_valid_parameters

__all__ = ["BUY", "SELL", "signals", "warmup_bars"]

BUY = 1
SELL = -1

_Rule = Callable[[FloatArray, Mapping[str, Number]], Signals]


def signals(
    kind: str,
    params: Mapping[str, object],
    close: npt.ArrayLike,
    high: npt.ArrayLike | None = None,
    low: npt.ArrayLike | None = None,
) -> Signals:
    """``int8`` per bar: +1 buy, -1 sell, 0 nothing.

    ``high`` and ``low`` are accepted so every kind has one signature; none
    of the current kinds uses them. Raises ``InvalidParametersError`` for
    parameters that :func:`validate_parameters` would reject.
    """
    normalised = require_valid_parameters(kind, params)
    closes = np.asarray(close, dtype=np.float64)
    return _RULES[kind](closes, normalised)


def warmup_bars(kind: str, params: Mapping[str, object]) -> int:
    """Bars consumed before the first bar that can carry a signal.

    A live strategy must replay at least this many closed bars before its
    first live bar to be in the same state a backtest would be.
    """
    p = require_valid_parameters(kind, params)
    if kind in ("SMA_CROSS", "EMA_CROSS"):
        return int(p["slow"])  # slow average defined from slow - 1; a cross needs one more bar
    if kind == "RSI_REVERSION":
        return int(p["period"]) + 1
    if kind == "MACD_CROSS":
        return int(p["slow"]) + int(p["signal"]) - 1
    return int(p["period"])  # BOLLINGER_BREAKOUT


def _moving_average_cross(average: Callable[[FloatArray, int], FloatArray]) -> _Rule:
    def rule(close: FloatArray, p: Mapping[str, Number]) -> Signals:
        return crossings(average(close, int(p["fast"])), average(close, int(p["slow"])))

    return rule


def _rsi_reversion(close: FloatArray, p: Mapping[str, Number]) -> Signals:
    strength = rsi(close, int(p["period"]))
    buy = crossings(strength, float(p["lower"])) == BUY
    sell = crossings(strength, float(p["upper"])) == SELL
    return _combine(buy, sell)


def _macd_cross(close: FloatArray, p: Mapping[str, Number]) -> Signals:
    result = macd(close, int(p["fast"]), int(p["slow"]), int(p["signal"]))
    return crossings(result.macd, result.signal, scale=close)


def _bollinger_breakout(close: FloatArray, p: Mapping[str, Number]) -> Signals:
    bands = bollinger(close, int(p["period"]), float(p["stddev"]))
    buy = crossings(close, bands.upper) == BUY
    sell = crossings(close, bands.middle) == SELL
    return _combine(buy, sell)


def _combine(buy: npt.NDArray[np.bool_], sell: npt.NDArray[np.bool_]) -> Signals:
    # Both cannot hold on one bar: each needs the close (or RSI) on opposite
    # sides of two levels that are ordered the other way.
    out: Signals = buy.astype(np.int8) - sell.astype(np.int8)
    return out


_RULES: Mapping[str, _Rule] = {
    "SMA_CROSS": _moving_average_cross(sma),
    "EMA_CROSS": _moving_average_cross(ema),
    "RSI_REVERSION": _rsi_reversion,
    "MACD_CROSS": _macd_cross,
    "BOLLINGER_BREAKOUT": _bollinger_breakout,
}
