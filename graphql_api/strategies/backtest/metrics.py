"""Performance statistics of an equity curve.

These are statistics, not money: floats. The money (cash, P&L, commission)
stays Decimal in the engine.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from graphql_api.market.indicators import FloatArray

__all__ = ["SECONDS_PER_YEAR", "cagr_pct", "max_drawdown_pct", "sharpe_ratio"]

SECONDS_PER_YEAR = 365.25 * 24 * 3600


def sharpe_ratio(equity: FloatArray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio of per-bar returns (risk-free rate 0, sample std).

    0 when it is undefined: fewer than two returns, or no variation at all.
    A bar that starts with no positive equity (a short that lost everything)
    contributes a zero return rather than a division by zero.
    """
    if equity.size < 3:
        return 0.0
    before = equity[:-1]
    returns = np.divide(
        np.diff(equity), before, out=np.zeros(before.size, dtype=np.float64), where=before > 0.0
    )
    deviation = float(np.std(returns, ddof=1))
    if deviation == 0.0:
        return 0.0
    return float(np.mean(returns)) / deviation * math.sqrt(periods_per_year)


def max_drawdown_pct(equity: FloatArray) -> float:
    """Largest fall from a running peak, as a positive percentage of that peak."""
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max((peaks - equity) / peaks)) * 100.0


def cagr_pct(initial: Decimal, final: Decimal, years: float) -> float | None:
    """Compound annual growth rate over ``years`` of calendar time.

    ``None`` when it means nothing: no elapsed time, or a rate too large for a
    float (a gain over a few minutes, compounded over a year).
    """
    if years <= 0.0:
        return None
    ratio = float(final / initial)
    if ratio <= 0.0:
        return -100.0
    exponent = math.log(ratio) / years
    if exponent > 700.0:  # exp() overflows just above 709
        return None
    return math.expm1(exponent) * 100.0
