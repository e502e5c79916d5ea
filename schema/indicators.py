"""Indicator series: bars as columns with indicators over them (``klineSeries``), and the
query's resolver, which ``schema.query.Query`` declares as a field."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import strawberry

from graphql_api.market.indicators import FloatArray, atr, bollinger, ema, macd, rsi, sma
from resolvers import indicators as resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from schema.common import From, To
from schema.enums import KlineInterval
from storage import timeseries as ts


@strawberry.type(description="MACD line, signal line and histogram, aligned with the bars.")
class MacdSeries:
    macd: list[float | None] = strawberry.field(description="Fast EMA minus slow EMA.")
    signal: list[float | None] = strawberry.field(description="EMA of the MACD line.")
    histogram: list[float | None] = strawberry.field(description="MACD minus signal.")


@strawberry.type(description="Bollinger Bands, aligned with the bars.")
class BollingerSeries:
    upper: list[float | None] = strawberry.field(description="Middle + k standard deviations.")
    middle: list[float | None] = strawberry.field(description="SMA of the closes.")
    lower: list[float | None] = strawberry.field(description="Middle - k standard deviations.")


@strawberry.type(
    description=(
        "Indicators over the series' bars (TA-Lib conventions, see docs/indicators.md): one "
        "value per bar, null while warming up."
    )
)
class KlineIndicators:
    closes: strawberry.Private[FloatArray]
    highs: strawberry.Private[FloatArray]
    lows: strawberry.Private[FloatArray]

    @strawberry.field(description="Simple moving average of the closes.")
    def sma(self, period: int) -> list[float | None]:
        return resolvers.nullable(resolvers.indicator(sma, self.closes, period=period))

    @strawberry.field(description="Exponential moving average, seeded with the SMA.")
    def ema(self, period: int) -> list[float | None]:
        return resolvers.nullable(resolvers.indicator(ema, self.closes, period=period))

    @strawberry.field(description="Wilder's RSI, 0-100.")
    def rsi(self, period: int = 14) -> list[float | None]:
        return resolvers.nullable(resolvers.indicator(rsi, self.closes, period=period))

    @strawberry.field(description="MACD(fast, slow, signal).")
    def macd(self, fast: int = 12, slow: int = 26, signal: int = 9) -> MacdSeries:
        result = resolvers.indicator(macd, self.closes, fast=fast, slow=slow, signal=signal)
        return MacdSeries(
            macd=resolvers.nullable(result.macd),
            signal=resolvers.nullable(result.signal),
            histogram=resolvers.nullable(result.histogram),
        )

    @strawberry.field(description="Bollinger Bands: SMA(period) +/- stddev population sigmas.")
    def bollinger(self, period: int = 20, stddev: float = 2.0) -> BollingerSeries:
        bands = resolvers.indicator(bollinger, self.closes, period=period, stddev=stddev)
        return BollingerSeries(
            upper=resolvers.nullable(bands.upper),
            middle=resolvers.nullable(bands.middle),
            lower=resolvers.nullable(bands.lower),
        )

    @strawberry.field(description="Average true range (Wilder).")
    def atr(self, period: int = 14) -> list[float | None]:
        values = resolvers.indicator(atr, self.highs, self.lows, self.closes, period=period)
        return resolvers.nullable(values)


@strawberry.type(
    description="Bars as columns (one array per field, index i = bar i), with indicators."
)
class KlineSeries:
    symbol: str = strawberry.field(description="Symbol code.")
    interval: KlineInterval = strawberry.field(description="Bar width.")
    times: list[datetime] = strawberry.field(description="Bar starts (UTC).")
    opens: list[Decimal] = strawberry.field(description="Opening prices.")
    highs: list[Decimal] = strawberry.field(description="Highest prices.")
    lows: list[Decimal] = strawberry.field(description="Lowest prices.")
    closes: list[Decimal] = strawberry.field(description="Closing prices.")
    volumes: list[Decimal] = strawberry.field(description="Traded quantities.")
    indicators: KlineIndicators = strawberry.field(description="Indicators over these bars.")

    # What the compiled read path writes for ``klineSeries`` (``kline_columns``). Not
    # ``indicators``: they are computed in Python from the bars' floats, so a selection
    # with them takes the standard path.
    column_fields: ClassVar[frozenset[str]] = frozenset(
        {"symbol", "interval", "times", "opens", "highs", "lows", "closes", "volumes"}
    )

    @classmethod
    def from_bars(
        cls, symbol: str, interval: ts.KlineInterval, bars: list[ts.Bar], scale: Amounts
    ) -> KlineSeries:
        closes = [bar.close for bar in bars]
        highs = [bar.high for bar in bars]
        lows = [bar.low for bar in bars]

        def prices(values: list[Decimal]) -> list[Decimal]:
            return [scale.price(value, symbol) for value in values]

        return cls(
            symbol=symbol,
            interval=interval,
            times=[bar.time for bar in bars],
            opens=prices([bar.open for bar in bars]),
            highs=prices(highs),
            lows=prices(lows),
            closes=prices(closes),
            volumes=[scale.quantity(bar.volume, symbol) for bar in bars],
            indicators=KlineIndicators(
                closes=resolvers.floats(closes),
                highs=resolvers.floats(highs),
                lows=resolvers.floats(lows),
            ),
        )


def kline_columns(
    symbol: str, interval: ts.KlineInterval, bars: Sequence[ts.BarText]
) -> dict[str, Any]:
    """Bars as :meth:`KlineSeries.from_bars` then the scalars would write them, as
    JSON values by field name (``KlineSeries.column_fields``): the store wrote the
    amounts at their scales and the times in ISO form (:class:`storage.timeseries.BarText`)."""
    return {
        "symbol": symbol,
        "interval": interval.name,
        "times": [bar.time for bar in bars],
        "opens": [bar.open for bar in bars],
        "highs": [bar.high for bar in bars],
        "lows": [bar.low for bar in bars],
        "closes": [bar.close for bar in bars],
        "volumes": [bar.volume for bar in bars],
    }


async def kline_series(
    info: Info,
    symbol: str,
    interval: KlineInterval,
    from_: From = None,
    to: To = None,
    limit: int = 500,
) -> KlineSeries:
    code = symbol.upper()
    domain_interval = ts.KlineInterval(interval.value)
    bars = await resolvers.kline_series(info, code, domain_interval, from_, to, limit)
    return KlineSeries.from_bars(code, domain_interval, bars, amounts(info))
