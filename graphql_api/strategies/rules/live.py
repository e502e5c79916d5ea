"""Every strategy kind's rule, one closed bar at a time (live strategies).

Each rule is built from the incremental indicators and
:class:`~graphql_api.strategies.rules.crossing.CrossTracker`, and fires on
exactly the bars where :func:`~graphql_api.strategies.rules.signals.signals`
has a non-zero value for the same series, so a strategy behaves live as it
did in its backtest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, SupportsFloat

from graphql_api.market.indicators import (
    IncrementalBollinger,
    IncrementalEMA,
    IncrementalMACD,
    IncrementalRSI,
    IncrementalSMA,
)
from graphql_api.strategies.rules.crossing import CrossTracker
from graphql_api.strategies.rules.parameters import require_valid_parameters
from graphql_api.strategies.rules.signals import BUY, SELL

__all__ = ["LiveRule", "LiveSignal", "make_live_rule"]


@dataclass(frozen=True, slots=True)
class LiveSignal:
    side: Literal["BUY", "SELL"]
    reason: str


class LiveRule(Protocol):
    def on_bar(
        self,
        close: SupportsFloat,
        high: SupportsFloat | None = None,
        low: SupportsFloat | None = None,
    ) -> LiveSignal | None:
        """Feed one closed bar; the signal decided on its close, if any."""
        ...


def make_live_rule(kind: str, params: Mapping[str, object]) -> LiveRule:
    """A fresh rule with no history; replay ``warmup_bars(kind, params)`` bars to prime it.

    Raises ``InvalidParametersError`` for parameters that
    :func:`validate_parameters` would reject.
    """
    p = require_valid_parameters(kind, params)
    if kind == "SMA_CROSS":
        return _MovingAverageCross("SMA", int(p["fast"]), int(p["slow"]))
    if kind == "EMA_CROSS":
        return _MovingAverageCross("EMA", int(p["fast"]), int(p["slow"]))
    if kind == "RSI_REVERSION":
        return _RsiReversion(int(p["period"]), float(p["lower"]), float(p["upper"]))
    if kind == "MACD_CROSS":
        return _MacdCross(int(p["fast"]), int(p["slow"]), int(p["signal"]))
    return _BollingerBreakout(int(p["period"]), float(p["stddev"]))


class _MovingAverageCross:
    def __init__(self, name: Literal["SMA", "EMA"], fast: int, slow: int) -> None:
        average = IncrementalSMA if name == "SMA" else IncrementalEMA
        self._fast = average(fast)
        self._slow = average(slow)
        self._cross = CrossTracker()
        self._labels = f"{name}({fast})", f"{name}({slow})"

    def on_bar(
        self,
        close: SupportsFloat,
        high: SupportsFloat | None = None,
        low: SupportsFloat | None = None,
    ) -> LiveSignal | None:
        price = float(close)
        cross = self._cross.update(self._fast.update(price), self._slow.update(price))
        fast, slow = self._labels
        if cross == BUY:
            return LiveSignal("BUY", f"{fast} crossed above {slow}")
        if cross == SELL:
            return LiveSignal("SELL", f"{fast} crossed below {slow}")
        return None


class _RsiReversion:
    def __init__(self, period: int, lower: float, upper: float) -> None:
        self._rsi = IncrementalRSI(period)
        self._period = period
        self._lower, self._upper = lower, upper
        self._lower_cross = CrossTracker()
        self._upper_cross = CrossTracker()

    def on_bar(
        self,
        close: SupportsFloat,
        high: SupportsFloat | None = None,
        low: SupportsFloat | None = None,
    ) -> LiveSignal | None:
        strength = self._rsi.update(float(close))
        lower = self._lower_cross.update(strength, self._lower)
        upper = self._upper_cross.update(strength, self._upper)
        label = f"RSI({self._period})"
        if lower == BUY:
            return LiveSignal(
                "BUY", f"{label} crossed back above {self._lower:g} (now {strength:.2f})"
            )
        if upper == SELL:
            return LiveSignal(
                "SELL", f"{label} crossed back below {self._upper:g} (now {strength:.2f})"
            )
        return None


class _MacdCross:
    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self._macd = IncrementalMACD(fast, slow, signal)
        self._cross = CrossTracker()
        self._label = f"MACD({fast},{slow})"
        self._signal_label = f"signal line ({signal})"

    def on_bar(
        self,
        close: SupportsFloat,
        high: SupportsFloat | None = None,
        low: SupportsFloat | None = None,
    ) -> LiveSignal | None:
        price = float(close)
        point = self._macd.update(price)
        cross = self._cross.update(
            None if point is None else point.macd,
            None if point is None else point.signal,
            scale=price,
        )
        if cross == BUY:
            return LiveSignal("BUY", f"{self._label} crossed above its {self._signal_label}")
        if cross == SELL:
            return LiveSignal("SELL", f"{self._label} crossed below its {self._signal_label}")
        return None


class _BollingerBreakout:
    def __init__(self, period: int, stddev: float) -> None:
        self._bands = IncrementalBollinger(period, stddev)
        self._upper_cross = CrossTracker()
        self._middle_cross = CrossTracker()
        self._label = f"Bollinger band ({period}, {stddev:g})"

    def on_bar(
        self,
        close: SupportsFloat,
        high: SupportsFloat | None = None,
        low: SupportsFloat | None = None,
    ) -> LiveSignal | None:
        price = float(close)
        bands = self._bands.update(price)
        upper = self._upper_cross.update(price, None if bands is None else bands.upper)
        middle = self._middle_cross.update(price, None if bands is None else bands.middle)
        if upper == BUY:
            return LiveSignal("BUY", f"close {price:g} crossed above the upper {self._label}")
        if middle == SELL:
            return LiveSignal("SELL", f"close {price:g} crossed below the middle {self._label}")
        return None
