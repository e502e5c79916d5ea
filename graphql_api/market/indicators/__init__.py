"""Technical indicators (TA-Lib conventions): whole series at once, or one bar at a time.

Indicators are statistics, not money, so they are float64; warm-up values are
NaN in the vectorised functions and ``None`` from the incremental classes.
"""

from graphql_api.market.indicators.incremental import (
    BollingerPoint,
    IncrementalATR,
    IncrementalBollinger,
    IncrementalEMA,
    IncrementalMACD,
    IncrementalRSI,
    IncrementalSMA,
    MacdPoint,
)
from graphql_api.market.indicators.vectorised import (
    BollingerResult,
    FloatArray,
    MacdResult,
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
)

__all__ = [
    "BollingerPoint",
    "BollingerResult",
    "FloatArray",
    "IncrementalATR",
    "IncrementalBollinger",
    "IncrementalEMA",
    "IncrementalMACD",
    "IncrementalRSI",
    "IncrementalSMA",
    "MacdPoint",
    "MacdResult",
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rsi",
    "sma",
]
