"""When one series crosses another: the single definition behind every strategy rule.

"a crosses above b" on bar ``t`` means ``a > b`` on ``t`` and ``a <= b`` on
``t - 1``, both bars having both values; "crosses below" mirrors it.

Two values within ``TIE_TOLERANCE`` of each other, relative to their scale,
count as equal. Indicators computed two ways (whole series, or bar by bar)
agree only to ~1e-13, and on flat prices two moving averages are equal in
exact arithmetic but differ in their last bits; without the tolerance,
rounding noise would decide signals there, and the live rule and the
backtest could disagree. The scale is the larger magnitude of the two values,
or an explicit ``scale`` for values that are differences of prices (MACD),
which sit near zero while their rounding errors are relative to the price.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from graphql_api.market.indicators import FloatArray

__all__ = ["TIE_TOLERANCE", "CrossTracker", "crossings", "side"]

TIE_TOLERANCE = 1e-9

Signals = npt.NDArray[np.int8]


def side(a: float, b: float, scale: float | None = None) -> int:
    """+1 if ``a`` is above ``b``, -1 if below, 0 if they are equal within tolerance."""
    difference = a - b
    tolerance = TIE_TOLERANCE * (max(abs(a), abs(b)) if scale is None else abs(scale))
    if difference > tolerance:
        return 1
    if difference < -tolerance:
        return -1
    return 0


def crossings(a: FloatArray, b: FloatArray | float, scale: FloatArray | None = None) -> Signals:
    """+1 where ``a`` crosses above ``b``, -1 where it crosses below, else 0.

    Performs, element by element, exactly the float operations of
    :func:`side`, so the vectorised and live rules see identical sides.
    """
    b_values = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    difference = a - b_values
    magnitude = np.maximum(np.abs(a), np.abs(b_values)) if scale is None else np.abs(scale)
    tolerance = TIE_TOLERANCE * magnitude
    sides = (difference > tolerance).astype(np.int8) - (difference < -tolerance).astype(np.int8)
    defined = ~(np.isnan(a) | np.isnan(b_values))
    both_defined = defined[1:] & defined[:-1]
    out = np.zeros(a.shape, dtype=np.int8)
    out[1:][both_defined & (sides[1:] == 1) & (sides[:-1] <= 0)] = 1
    out[1:][both_defined & (sides[1:] == -1) & (sides[:-1] >= 0)] = -1
    return out


class CrossTracker:
    """Bar-by-bar :func:`crossings`: feed ``(a, b)`` per bar, ``None`` while not yet defined."""

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: int | None = None

    def update(self, a: float | None, b: float | None, scale: float | None = None) -> int:
        if a is None or b is None:
            self._previous = None
            return 0
        now = side(a, b, scale)
        previous, self._previous = self._previous, now
        if previous is None:
            return 0
        if now == 1 and previous <= 0:
            return 1
        if now == -1 and previous >= 0:
            return -1
        return 0
