"""Backtests, strategy kinds, strategy start/stop, bar imports and indicator series.

The functions here are the root fields' resolvers; ``schema.query.Query`` and
``schema.mutation.Mutation`` declare the fields (``strawberry.field(resolver=...)``).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
import strawberry
from strawberry.scalars import JSON

from graphql_api.market.indicators import FloatArray, atr, bollinger, ema, macd, rsi, sma
from graphql_api.strategies import backtest as engine
from graphql_api.strategies.backtest import service as domain
from resolvers import backtests as resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from resolvers.errors import bad_user_input
from schema.common import UserError, user_errors
from schema.enums import KlineInterval, StrategyKind
from schema.strategies import StrategyPayload, strategy_or_none
from storage import timeseries as ts

strawberry.enum(
    domain.TradeSide, name="TradeSide", description="Direction of a backtest round trip."
)
TradeSide = domain.TradeSide


@strawberry.enum(name="ParameterType", description="How a strategy parameter is read.")
class ParameterType(enum.Enum):
    INT = "int"
    FLOAT = "float"


# --- backtests -------------------------------------------------------------------------------


@strawberry.input(description="A backtest of a strategy kind over stored bars.")
class BacktestInput:
    kind: StrategyKind = strawberry.field(description="Signal rule to test.")
    parameters: JSON | None = strawberry.field(
        default=None, description="Parameters of the kind as a JSON object; omitted ones default."
    )
    symbol: str = strawberry.field(description="Symbol code.")
    from_: datetime = strawberry.field(
        name="from", description="Bars starting at or after this time (UTC if no offset)."
    )
    to: datetime = strawberry.field(description="Bars starting before this time.")
    interval: KlineInterval = strawberry.field(
        default=ts.KlineInterval.DAY_1,
        description="Bar width: DAY_1 uses the daily history, intraday widths stored ticks.",
    )
    initial_cash: Decimal = strawberry.field(
        default=domain.DEFAULT_INITIAL_CASH, description="Starting cash."
    )
    commission: Decimal = strawberry.field(
        default=domain.DEFAULT_COMMISSION_RATE,
        description="Commission rate on every fill's notional, in [0, 1).",
    )
    allow_short: bool = strawberry.field(
        default=False, description="Stop-and-reverse into shorts on sell signals."
    )
    fixed_quantity: Decimal | None = strawberry.field(
        default=None,
        description="Trade this quantity (a multiple of the lot size) instead of all the cash.",
    )

    def to_request(self) -> domain.BacktestRequest:
        if self.parameters is not None and not isinstance(self.parameters, dict):
            raise bad_user_input("parameters must be a JSON object", argument="parameters")
        return domain.BacktestRequest(
            kind=self.kind.value,
            parameters=self.parameters or {},
            symbol=self.symbol,
            start=self.from_,
            end=self.to,
            interval=ts.KlineInterval(self.interval.value),
            initial_cash=self.initial_cash,
            commission_rate=self.commission,
            allow_short=self.allow_short,
            fixed_quantity=self.fixed_quantity,
        )


@strawberry.type(description="Equity marked to market at one bar's close.")
class EquityPoint:
    time: datetime = strawberry.field(description="Bar start (UTC).")
    equity: float = strawberry.field(description="Cash plus the position at the close.")


@strawberry.type(description="One round trip of a backtest: entry and exit fills.")
class BacktestTrade:
    side: TradeSide = strawberry.field(description="LONG or SHORT.")
    quantity: Decimal = strawberry.field(description="Quantity traded.")
    entry_time: datetime = strawberry.field(description="Start of the bar whose open filled it.")
    entry_price: Decimal = strawberry.field(description="Entry fill price.")
    exit_time: datetime = strawberry.field(description="Start of the exit bar.")
    exit_price: Decimal = strawberry.field(description="Exit fill price.")
    pnl: Decimal = strawberry.field(description="Profit or loss net of both commissions.")
    commission: Decimal = strawberry.field(description="Entry plus exit commission.")
    return_pct: float = strawberry.field(description="P&L over the entry notional, in percent.")

    @classmethod
    def from_domain(cls, trade: engine.Trade, scale: Amounts, symbol: str) -> BacktestTrade:
        return cls(
            side=domain.TradeSide(trade.side),
            quantity=scale.quantity(trade.quantity, symbol),
            entry_time=trade.entry_time,
            entry_price=scale.price(trade.entry_price, symbol),
            exit_time=trade.exit_time,
            exit_price=scale.price(trade.exit_price, symbol),
            pnl=scale.quote_cash(trade.pnl, symbol),
            commission=scale.quote_cash(trade.commission, symbol),
            return_pct=trade.return_pct,
        )


@strawberry.type(description="Performance of a backtest; see docs/strategies.md for definitions.")
class BacktestResult:
    total_return_pct: float = strawberry.field(description="(final - initial) / initial, in %.")
    cagr_pct: float | None = strawberry.field(
        description="Compound annual growth over calendar time, in %; null if undefined."
    )
    sharpe: float = strawberry.field(description="Annualised Sharpe ratio of per-bar returns.")
    max_drawdown_pct: float = strawberry.field(description="Largest fall from a peak, in %.")
    win_rate_pct: float | None = strawberry.field(
        description="Winning trades over all trades, in %; null without trades."
    )
    trade_count: int = strawberry.field(description="Round trips.")
    exposure_pct: float = strawberry.field(description="Share of bar closes with a position, %.")
    initial_cash: Decimal = strawberry.field(description="Starting cash.")
    final_equity: Decimal = strawberry.field(description="Cash after the last fill.")
    total_commission: Decimal = strawberry.field(description="Commission paid on all fills.")
    outcome: strawberry.Private[engine.BacktestResult]
    scale: strawberry.Private[Amounts]
    symbol: strawberry.Private[str]

    @classmethod
    def from_domain(
        cls, result: engine.BacktestResult, scale: Amounts, symbol: str
    ) -> BacktestResult:
        return cls(
            total_return_pct=result.total_return_pct,
            cagr_pct=result.cagr_pct,
            sharpe=result.sharpe,
            max_drawdown_pct=result.max_drawdown_pct,
            win_rate_pct=result.win_rate_pct,
            trade_count=result.trade_count,
            exposure_pct=result.exposure_pct,
            initial_cash=scale.quote_cash(result.initial_cash, symbol),
            final_equity=scale.quote_cash(result.final_equity, symbol),
            total_commission=scale.quote_cash(result.total_commission, symbol),
            outcome=result,
            scale=scale,
            symbol=symbol,
        )

    @strawberry.field(description="Equity at every bar's close, oldest first.")
    def equity_curve(self) -> list[EquityPoint]:
        times = _datetimes(self.outcome.times)
        return [
            EquityPoint(time=moment, equity=value)
            for moment, value in zip(times, self.outcome.equity.tolist(), strict=True)
        ]

    @strawberry.field(description="Round trips in entry order.")
    def trades(self) -> list[BacktestTrade]:
        return [
            BacktestTrade.from_domain(trade, self.scale, self.symbol)
            for trade in self.outcome.trades
        ]


@strawberry.type(description="Result of runBacktest.")
class RunBacktestPayload:
    result: BacktestResult | None = strawberry.field(description="Null when the input is unusable.")
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")


async def run_backtest(info: Info, input: BacktestInput) -> RunBacktestPayload:
    request = input.to_request()
    outcome = await resolvers.run_backtest(info, request)
    symbol = request.symbol.strip().upper()
    result = (
        BacktestResult.from_domain(outcome.result, amounts(info), symbol)
        if outcome.result is not None
        else None
    )
    return RunBacktestPayload(result=result, user_errors=user_errors(outcome.errors))


# --- strategy kinds --------------------------------------------------------------------------

_KIND_DESCRIPTIONS = {
    "SMA_CROSS": "Buy when the fast simple moving average crosses above the slow one; "
    "sell when it crosses below.",
    "EMA_CROSS": "Buy when the fast exponential moving average crosses above the slow one; "
    "sell when it crosses below.",
    "RSI_REVERSION": "Buy when RSI climbs back above `lower` (leaves oversold); "
    "sell when it falls back below `upper` (leaves overbought).",
    "MACD_CROSS": "Buy when the MACD line crosses above its signal line; sell when it "
    "crosses below.",
    "BOLLINGER_BREAKOUT": "Buy when the close crosses above the upper band; sell when it "
    "crosses below the middle band.",
}


@strawberry.type(description="One tunable parameter of a strategy kind.")
class StrategyParameter:
    name: str = strawberry.field(description="Key in the `parameters` JSON object.")
    type: ParameterType = strawberry.field(description="INT (a count of bars) or FLOAT.")
    default: float = strawberry.field(description="Value used when omitted.")
    minimum: float = strawberry.field(description="Smallest allowed value (inclusive).")
    maximum: float = strawberry.field(description="Largest allowed value (inclusive).")
    description: str = strawberry.field(description="What it controls.")


@strawberry.type(description="A signal rule strategies and backtests can use.")
class StrategyKindInfo:
    kind: StrategyKind = strawberry.field(description="The kind.")
    description: str = strawberry.field(description="Its buy and sell rule.")
    parameters: list[StrategyParameter] = strawberry.field(description="Its parameters.")


def strategy_kinds() -> list[StrategyKindInfo]:
    return [
        StrategyKindInfo(
            kind=StrategyKind(kind),
            description=_KIND_DESCRIPTIONS.get(kind, ""),
            parameters=[
                StrategyParameter(
                    name=spec.name,
                    type=ParameterType(spec.type),
                    default=float(spec.default),
                    minimum=float(spec.minimum),
                    maximum=float(spec.maximum),
                    description=spec.description,
                )
                for spec in specs
            ],
        )
        for kind, specs in resolvers.strategy_kinds()
    ]


# --- start / stop ----------------------------------------------------------------------------


async def start_strategy(info: Info, id: strawberry.ID) -> StrategyPayload:
    outcome = await resolvers.start_strategy(info, id)
    return StrategyPayload(
        strategy=strategy_or_none(outcome.strategy), user_errors=user_errors(outcome.errors)
    )


async def stop_strategy(info: Info, id: strawberry.ID) -> StrategyPayload:
    outcome = await resolvers.stop_strategy(info, id)
    return StrategyPayload(
        strategy=strategy_or_none(outcome.strategy), user_errors=user_errors(outcome.errors)
    )


# --- importBars ------------------------------------------------------------------------------


@strawberry.type(description="A CSV row that was not imported.")
class RejectedBarRow:
    line: int = strawberry.field(description="Line number in the CSV (the header is line 1).")
    reason: str = strawberry.field(description="Why it was rejected.")


@strawberry.type(description="Result of importBars: every row is written, or none.")
class ImportBarsPayload:
    rows_read: int = strawberry.field(description="Data rows in the CSV (blank lines skipped).")
    rows_written: int = strawberry.field(description="Daily bars inserted or replaced.")
    rejected: list[RejectedBarRow] = strawberry.field(description="Rows that failed validation.")
    user_errors: list[UserError] = strawberry.field(
        description="File-level problems and one per rejected row (field `csv.<line>`)."
    )


async def import_bars(info: Info, symbol: str, csv: str) -> ImportBarsPayload:
    report = await resolvers.import_bars(info, symbol, csv)
    return ImportBarsPayload(
        rows_read=report.rows_read,
        rows_written=report.rows_written,
        rejected=[RejectedBarRow(line=row.line, reason=row.reason) for row in report.rejected],
        user_errors=user_errors(report.errors),
    )


# --- klineSeries -----------------------------------------------------------------------------


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


From = Annotated[
    datetime | None, strawberry.argument(name="from", description="Inclusive start (UTC).")
]
To = Annotated[datetime | None, strawberry.argument(description="Exclusive end (UTC).")]


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


def _datetimes(times: Any) -> list[datetime]:
    naive: list[datetime] = np.asarray(times, dtype="datetime64[us]").tolist()
    return [moment.replace(tzinfo=UTC) for moment in naive]
